"""Abuse of state: a flood of distinct session keys. The state stays at its cap (LRU eviction, counted
and logged without flooding the log) and idle keys expire."""

from __future__ import annotations

import json

import pytest

from tests.chaos.load import report, rss_mb
from tests.conftest import collect
from workers.client import send
from workers.transport.records import OutgoingRecord

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
KEYS, CAP, TTL_S = 20_000, 500, 3


def test_twenty_thousand_sessions_stay_within_the_cap_and_expire(broker, topics, start_worker) -> None:
    from workers.settings import KafkaSettings

    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, client="confluent")
    worker = start_worker("clicks", kafka, topics, WORKERS_MAX_KEYS=str(CAP), WORKERS_STATE_TTL_S=str(TTL_S))
    events = [OutgoingRecord(topics["input"], json.dumps({"session_id": f"flood-{i}", "item_id": f"i{i % 900}",
                                                          "event_type": "view", "ts": 1795340000 + i}).encode(),
                             f"flood-{i}".encode()) for i in range(KEYS)]
    peak_keys = 0.0

    def until(records: list) -> bool:
        nonlocal peak_keys
        if len(records) % 500 == 0:
            peak_keys = max(peak_keys, worker.metric("workers_state_keys"))
        return len(records) >= KEYS

    send(kafka, events, timeout_s=120)
    collect(kafka, [topics["output"]], until, timeout_s=300)
    peak_keys = max(peak_keys, worker.metric("workers_state_keys"))
    rss = rss_mb(worker.process.pid)
    capacity_evictions = worker.metric("workers_state_evictions_total", reason="capacity")
    assert peak_keys <= CAP
    assert capacity_evictions >= KEYS - CAP - 1  # a fresh key arrives for every eviction
    worker.wait_for(lambda: worker.metric("workers_state_keys") == 0, TTL_S + 15, "idle sessions expired")
    ttl_evictions = worker.metric("workers_state_evictions_total", reason="ttl")
    assert ttl_evictions > 0
    log = worker.log_path.read_text()
    eviction_lines = log.count("evicted")
    assert 1 <= eviction_lines <= 20, f"{eviction_lines} eviction log lines for {capacity_evictions:.0f} evictions"
    assert "expired" in log
    report("state_abuse[clicks]", distinct_keys=KEYS, cap=CAP, peak_keys=int(peak_keys),
           capacity_evictions=int(capacity_evictions), ttl_evictions=int(ttl_evictions), eviction_log_lines=eviction_lines,
           rss_mb=round(rss), lost=0)
