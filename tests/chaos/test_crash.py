"""Crash: kill -9 a worker five times at random moments under steady load, restarting it each time."""

from __future__ import annotations

import json
import random
import time
from collections import Counter

import pytest

from tests.chaos.load import SteadyLoad, report
from tests.conftest import collect, digit_requests

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
TOTAL, RATE, KILLS = 6000, 60.0, 5


def test_five_kill_9s_under_load_lose_nothing(broker, topics, start_worker) -> None:
    from workers.settings import KafkaSettings

    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, client="confluent")
    env = {"KAFKA_SESSION_TIMEOUT_MS": "6000", "WORKERS_COMMIT_INTERVAL_S": "1.0"}
    rng = random.Random(20261122)
    worker = start_worker("tensor", kafka, topics, **env)
    load = SteadyLoad(kafka, digit_requests(TOTAL, topics["input"]), RATE).start()
    recoveries = []
    for _ in range(KILLS):
        time.sleep(rng.uniform(1.0, 5.0))
        worker.process.kill()
        worker.process.wait(10)
        killed_at = time.monotonic()
        worker = start_worker("tensor", kafka, topics, **env)
        before = worker.metric("workers_messages_out_total")

        def recovered(w=worker, b=before) -> bool:  # producing again (or, once the load is over, caught up)
            return w.metric("workers_messages_out_total") > b or (load.done and w.metric("workers_consumer_lag") == 0)

        worker.wait_for(recovered, 60, "producing again")
        recoveries.append(time.monotonic() - killed_at)
    load.join()

    expected = {f"r{i}" for i in range(TOTAL)}
    seen: set[str] = set()

    def until(records: list) -> bool:
        seen.add(json.loads(records[-1].value)["id"])
        return expected <= seen

    collect(kafka, [topics["output"]], until, timeout_s=180)
    records = collect(kafka, [topics["output"]], lambda rs: False, timeout_s=5)  # everything, duplicates included
    ids = Counter(json.loads(r.value)["id"] for r in records)
    assert set(ids) == expected, f"{len(expected - set(ids))} inputs have no result"
    assert all(r.header("source.offset") is not None and r.header("source.partition") is not None for r in records)
    report("crash", load_msgs_per_s=RATE, messages=TOTAL, kill_9=KILLS, lost=0, duplicates=sum(ids.values()) - TOTAL,
           recovery_s_median=round(sorted(recoveries)[len(recoveries) // 2], 1), recovery_s_max=round(max(recoveries), 1))
