"""Hostile input: 1,000 generated bad messages per workload mixed into valid traffic. Every bad one lands
in the dead-letter topic with a reason and its original bytes, every valid one gets its result, and the
worker stays up."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from tests.chaos.hostile import BAD
from tests.chaos.load import report, valid_messages
from tests.conftest import collect
from workers.client import send
from workers.transport.records import OutgoingRecord

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
N_BAD = 1000
@pytest.mark.parametrize("worker_name", sorted(BAD))
def test_a_thousand_bad_messages_are_dead_lettered_and_valid_ones_answered(broker, topics, start_worker, worker_name) -> None:
    from workers.settings import KafkaSettings

    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, client="confluent")
    worker = start_worker(worker_name, kafka, topics)
    rng = random.Random(7)
    valid = valid_messages(worker_name, topics["input"], {"tensor": 500, "bot": 200, "clicks": 500}[worker_name])
    bad = [OutgoingRecord(topics["input"], value, key) for value, key in (BAD[worker_name](rng, i) for i in range(N_BAD))]
    mixed = list(valid)
    for record in bad:  # bad ones at random places; valid ones keep their order
        mixed.insert(rng.randrange(len(mixed) + 1), record)
    started = time.monotonic()
    send(kafka, mixed, timeout_s=120)

    got = collect(kafka, [topics["output"], topics["dlq"]], lambda rs: len(rs) >= len(mixed), timeout_s=180)
    elapsed = time.monotonic() - started
    dead = [r for r in got if r.topic == topics["dlq"]]
    results = [r for r in got if r.topic == topics["output"]]
    assert len(results) == len(valid) and len(dead) == N_BAD
    assert Counter(r.value for r in dead) == Counter(r.value for r in bad)  # original bytes kept
    reasons = Counter((r.header("dlq.reason") or b"").decode() for r in dead)
    assert "" not in reasons and all(r.header("dlq.detail") for r in dead)
    assert worker.process.poll() is None and worker.http_status("/v2/health/ready") == 200
    assert worker.metric("workers_messages_dlq_total") == N_BAD
    report(f"hostile_input[{worker_name}]", bad=N_BAD, valid=len(valid), dead_lettered=len(dead),
           answered=len(results), lost=0, worker_restarts=0, seconds=round(elapsed, 1), reasons=dict(reasons))
