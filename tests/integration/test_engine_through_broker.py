"""The engine's delivery promises through the real embedded broker, with real worker processes."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter

import pytest

from tests.conftest import collect, digit_requests
from workers.client import send
from workers.transport.records import OutgoingRecord, Record

pytestmark = pytest.mark.integration

MALFORMED = [
    (b'{"id": "a", "inputs": {"pixels": [1, 2]}}', "wrong_shape"),
    (b'{"id": "b"}', "missing_field"),
    (b"not json", "invalid_json"),
    (b"\xc3\x28", "invalid_utf8"),
    (b"[1, 2, 3]", "wrong_type"),
    (b'{"id": "c", "inputs": {"pixels": ' + json.dumps([1e39] * 64).encode() + b"}}", "not_finite"),
]


def result_ids(records: list[Record], output: str) -> Counter[str]:
    return Counter(json.loads(r.value)["id"] for r in records if r.topic == output)


def all_ids_seen(output: str, total: int) -> object:
    """A ``collect`` stop condition that looks at each new record once."""
    seen: set[str] = set()

    def until(records: list[Record]) -> bool:
        if records[-1].topic == output:
            seen.add(json.loads(records[-1].value)["id"])
        return len(seen) >= total

    return until


def test_every_valid_input_gets_a_result_and_malformed_ones_land_in_the_dlq(kafka, topics, start_worker) -> None:
    worker = start_worker("tensor", kafka, topics)
    valid = digit_requests(120, topics["input"])
    bad = [OutgoingRecord(topics["input"], body, key=b"bad") for body, _ in MALFORMED] * 3
    mixed = [r for pair in zip(valid[: len(bad)], bad) for r in pair] + valid[len(bad):]
    send(kafka, mixed)

    records = collect(kafka, [topics["output"], topics["dlq"]], lambda rs: len(rs) >= len(mixed))
    ids = result_ids(records, topics["output"])
    assert set(ids) == {f"r{i}" for i in range(120)}
    dead = [r for r in records if r.topic == topics["dlq"]]
    assert Counter((r.header("dlq.reason") or b"").decode() for r in dead) == Counter(
        {code: 3 for _, code in MALFORMED}
    )
    assert {r.value for r in dead} == {body for body, _ in MALFORMED}  # original bytes, untouched
    assert all(r.header("dlq.detail") and r.header("dlq.source.offset") is not None for r in dead)

    # the worker kept running and says so; its metrics count what happened
    assert worker.process.poll() is None and worker.http_status("/v2/health/ready") == 200
    worker.wait_for(lambda: worker.metric("workers_messages_out_total") == 120, 10, "counting results")
    assert worker.metric("workers_messages_in_total") == len(mixed)
    assert worker.metric("workers_messages_dlq_total", reason="wrong_shape") == 3
    assert worker.metric("workers_end_to_end_latency_seconds_count") == 120
    worker.wait_for(lambda: worker.metric("workers_consumer_lag") == 0, 10, "caught up (lag 0)")


def test_kill_9_mid_stream_then_restart_loses_nothing(kafka, topics, start_worker) -> None:
    total, upfront = 3000, 1000
    requests = digit_requests(total, topics["input"])
    send(kafka, requests[:upfront])

    def traffic() -> None:  # the rest arrives through the kill (at most 1,000/s): the worker cannot finish before it
        for start in range(upfront, total, 100):
            send(kafka, requests[start : start + 100])
            time.sleep(0.1)

    first = start_worker("tensor", kafka, topics, WORKERS_MAX_BATCH_SIZE="8")
    sender = threading.Thread(target=traffic)
    first.wait_for(lambda: first.metric("workers_messages_out_total") >= 300, 60, "part-way through")
    sender.start()
    done_before_kill = first.metric("workers_messages_out_total")
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    assert done_before_kill < total - 500, "the worker was nearly done before it was killed: the test proves little"

    start_worker("tensor", kafka, topics)
    sender.join()
    records = collect(kafka, [topics["output"]], all_ids_seen(topics["output"], total))
    ids = result_ids(records, topics["output"])
    assert set(ids) == {f"r{i}" for i in range(total)}
    duplicates = sum(ids.values()) - total
    print(f"\nkill -9 after {done_before_kill:.0f}/{total} results: 0 lost, {duplicates} duplicates (uncommitted window)")


def test_sigterm_drains_commits_and_exits_zero(kafka, topics, start_worker) -> None:
    total = 1500
    worker = start_worker("tensor", kafka, topics)
    send(kafka, digit_requests(total, topics["input"]))
    worker.wait_for(lambda: worker.metric("workers_messages_in_total") > 0, 30, "consuming")
    assert worker.stop(signal.SIGTERM) == 0
    assert "drained and committed" in worker.log()

    # A successor resumes exactly where the drained worker committed: no loss and no duplicates.
    start_worker("tensor", kafka, topics)
    collect(kafka, [topics["output"]], lambda rs: len(rs) >= total)
    time.sleep(2.0)  # room for any duplicate to show up
    ids = result_ids(collect(kafka, [topics["output"]], lambda rs: False, timeout_s=3), topics["output"])
    assert set(ids) == {f"r{i}" for i in range(total)}
    assert max(ids.values()) == 1, "a cleanly drained worker must leave nothing to redo"


def test_two_workers_split_partitions_and_hand_over_on_leave(kafka, topics, start_worker) -> None:
    total = 2400
    stop = threading.Event()

    def traffic() -> None:  # steady load through both rebalances
        for start in range(0, total, 100):
            send(kafka, digit_requests(100, topics["input"], start))
            time.sleep(0.15)
        stop.set()

    a = start_worker("tensor", kafka, topics)
    sender = threading.Thread(target=traffic)
    sender.start()
    b = start_worker("tensor", kafka, topics)
    a.wait_for(lambda: a.metric("workers_assigned_partitions") + b.metric("workers_assigned_partitions") == 4
               and a.metric("workers_assigned_partitions") < 4, 60, "sharing the partitions")
    b.wait_for(lambda: b.metric("workers_messages_out_total") > 0, 30, "producing results")
    assert b.stop(signal.SIGTERM) == 0  # leaves the group: its partitions move to a
    a.wait_for(lambda: a.metric("workers_assigned_partitions") == 4, 60, "taking over every partition")
    sender.join()

    records = collect(kafka, [topics["output"]], all_ids_seen(topics["output"], total))
    ids = result_ids(records, topics["output"])
    assert set(ids) == {f"r{i}" for i in range(total)}
    print(f"\ntwo workers: 0 lost, {sum(ids.values()) - total} duplicates across two rebalances")
