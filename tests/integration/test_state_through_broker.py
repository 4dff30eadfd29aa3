"""Per-key state through the real broker: restored from its changelog after a kill -9 and across a scale-out
and back, so the results equal those of a worker that was never disturbed (a reference worker in another
group reads the same input). The chaos suite does the same with confluent-kafka and five kills under load;
here the other client (speech: every final compared), and the hand-overs."""

from __future__ import annotations

import signal
import time

import pytest

from tests.chaos.load import SteadyLoad, differences, input_offsets, valid_messages
from tests.conftest import collect

pytestmark = pytest.mark.integration
ENV = {"KAFKA_SESSION_TIMEOUT_MS": "6000"}


def reference_of(topics: dict[str, str]) -> dict[str, str]:
    return topics | {"output": topics["output"] + "-reference", "group": topics["group"] + "-reference"}


def answers(kafka, topics: dict[str, str], n: int) -> list:  # type: ignore[no-untyped-def]
    records = collect(kafka, [topics["output"]], lambda rs: len(input_offsets(rs)) >= n, timeout_s=120)
    records += collect(kafka, [topics["output"]], lambda rs: False, timeout_s=2)[len(records):]  # late duplicates
    assert len(input_offsets(records)) == n, f"{n - len(input_offsets(records))} inputs have no result"
    return records


@pytest.mark.parametrize("client", ["kafka-python"])
@pytest.mark.parametrize("worker_name", ["bot", "clicks", "asr"])
def test_a_killed_worker_restores_its_state_and_answers_as_one_never_killed(kafka, topics, start_worker,
                                                                          worker_name: str) -> None:
    total = 400
    start_worker(worker_name, kafka, reference_of(topics), **ENV)
    worker = start_worker(worker_name, kafka, topics, **ENV)
    load = SteadyLoad(kafka, valid_messages(worker_name, topics["input"], total), rate=100).start()
    worker.wait_for(lambda: worker.metric("workers_messages_out_total") >= 80, 60, "answering")
    worker.process.kill()
    worker.process.wait(10)
    worker = start_worker(worker_name, kafka, topics, **ENV)
    load.join()
    records = answers(kafka, topics, total)
    assert worker.metric("workers_state_restored_keys_total") > 0
    assert not differences(worker_name, records, answers(kafka, reference_of(topics), total))


@pytest.mark.parametrize("client", ["confluent"])
@pytest.mark.parametrize("worker_name", ["bot", "clicks", "asr"])
def test_state_follows_its_partitions_when_a_worker_joins_and_leaves(kafka, topics, start_worker, worker_name: str) -> None:
    # 24 s of load the workers keep up with: the joiner starts and is assigned its partitions meanwhile (for speech
    # ~13 s after the load starts on a slow 2-core machine, where 12 s of load had ended before it got any)
    total = 1200
    start_worker(worker_name, kafka, reference_of(topics), **ENV)
    first = start_worker(worker_name, kafka, topics, **ENV)
    load = SteadyLoad(kafka, valid_messages(worker_name, topics["input"], total), rate=50).start()
    first.wait_for(lambda: first.metric("workers_messages_out_total") >= 100, 60, "answering")
    second = start_worker(worker_name, kafka, topics, **ENV)  # 1 -> 2: half the partitions move, state with them
    second.wait_for(lambda: second.metric("workers_messages_out_total") >= 20, 60, "answering its partitions")
    moved_in = second.metric("workers_state_restored_keys_total")
    assert second.stop(signal.SIGTERM) == 0  # 2 -> 1: they move back
    time.sleep(0.5)
    load.join()
    records = answers(kafka, topics, total)
    assert moved_in > 0 and first.metric("workers_state_restored_keys_total") > 0
    wrong = differences(worker_name, records, answers(kafka, reference_of(topics), total))
    assert not wrong, "\n".join([*wrong, first.events(), second.events()])
