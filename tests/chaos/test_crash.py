"""Crash: kill -9 a worker five times at random moments under steady load, restarting it each time.
Run against the three workloads (the generic tensor worker shares their engine and commit path, and was
measured once: docs/reliability.md); inputs are named by the source.partition/offset headers of their
results. The workloads' state has a changelog, so a reference worker in another group reads the same input
without a crash, and every result (re-reads included) must say what its result says (speech: every final)."""

from __future__ import annotations

import random
import time

import pytest

from tests.chaos.load import SteadyLoad, differences, input_offsets, report, valid_messages
from tests.conftest import collect

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
TOTAL, RATE, KILLS = 4000, 50.0, 5


@pytest.mark.parametrize("worker_name", ["bot", "clicks", "asr"])
def test_five_kill_9s_under_load_lose_nothing(broker, topics, start_worker, worker_name: str) -> None:
    from workers.settings import KafkaSettings

    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, client="confluent")
    env = {"KAFKA_SESSION_TIMEOUT_MS": "6000", "WORKERS_COMMIT_INTERVAL_S": "1.0"}
    rng = random.Random(20261122)
    reference_topics = topics | {"output": topics["output"] + "-reference", "group": topics["group"] + "-reference"}
    start_worker(worker_name, kafka, reference_topics, **env)
    worker = start_worker(worker_name, kafka, topics, **env)
    load = SteadyLoad(kafka, valid_messages(worker_name, topics["input"], TOTAL), RATE).start()
    recoveries = []
    for _ in range(KILLS):
        time.sleep(rng.uniform(1.0, 5.0))
        worker.process.kill()
        worker.process.wait(10)
        killed_at = time.monotonic()
        worker = start_worker(worker_name, kafka, topics, **env)
        before = worker.metric("workers_messages_out_total")

        def recovered(w=worker, b=before) -> bool:  # producing again (or, once the load is over, caught up)
            return w.metric("workers_messages_out_total") > b or (load.done and w.metric("workers_consumer_lag") == 0)

        worker.wait_for(recovered, 60, "producing again")
        recoveries.append(time.monotonic() - killed_at)
    load.join()

    seen: set[tuple[int, int]] = set()

    def until(records: list) -> bool:
        seen.update(input_offsets(records[-1:]))
        return len(seen) >= TOTAL

    collect(kafka, [topics["output"]], until, timeout_s=240)
    records = collect(kafka, [topics["output"]], lambda rs: False, timeout_s=5)  # everything, duplicates included
    per_input = input_offsets(records)
    assert len(per_input) == TOTAL, f"{TOTAL - len(per_input)} inputs have no result"
    reference = collect(kafka, [reference_topics["output"]], lambda rs: len(input_offsets(rs)) >= TOTAL, timeout_s=240)
    assert len(input_offsets(reference)) == TOTAL, "the reference run did not answer every input"
    differing = differences(worker_name, records, reference)
    assert not differing, f"{len(differing)} results differ from the run without a crash: {differing[:5]}"
    report(f"crash[{worker_name}]", load_msgs_per_s=RATE, messages=TOTAL, kill_9=KILLS, lost=0,
           compared_to_reference=len(records),
           duplicates=sum(per_input.values()) - TOTAL,
           recovery_s_median=round(sorted(recoveries)[len(recoveries) // 2], 1), recovery_s_max=round(max(recoveries), 1))
