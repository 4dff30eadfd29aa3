"""Overload: a burst far above capacity. The engine never holds more than WORKERS_MAX_IN_FLIGHT unfinished
messages (it polls only for the room left, and pauses the partitions when results are slow to be
acknowledged), so memory stays bounded while the backlog waits in the broker; the lag drains after the
burst and nothing is lost."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.chaos.load import report, rss_mb
from tests.conftest import collect, digit_requests
from workers.client import send

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
BURST, MAX_IN_FLIGHT, RSS_GROWTH_BOUND_MB = 30_000, 100, 250


def test_burst_at_many_times_capacity_is_absorbed(broker, topics, start_worker) -> None:
    from workers.settings import KafkaSettings

    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, client="confluent")
    worker = start_worker("tensor", kafka, topics, WORKERS_MAX_IN_FLIGHT=str(MAX_IN_FLIGHT),
                          WORKERS_MAX_BATCH_SIZE="8")  # small batches: a slower worker, so the burst outruns it
    pid = worker.process.pid
    baseline_rss = rss_mb(pid)
    samples: list[tuple[float, float, float]] = []  # (rss MB, in flight, paused)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                samples.append((rss_mb(pid), worker.metric("workers_in_flight"), worker.metric("workers_partitions_paused")))
            except OSError:
                pass
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    send(kafka, digit_requests(BURST, topics["input"]), timeout_s=120)
    produced_s = time.monotonic() - started
    expected = {f"r{i}" for i in range(BURST)}
    seen: set[str] = set()
    collect(kafka, [topics["output"]], lambda rs: (seen.add(json.loads(rs[-1].value)["id"]), expected <= seen)[1],
            timeout_s=300)
    drained_s = time.monotonic() - started
    worker.wait_for(lambda: worker.metric("workers_consumer_lag") == 0, 30, "lag drained")
    stop.set()
    sampler.join(5)

    assert seen == expected
    peak_rss = max(s[0] for s in samples)
    peak_in_flight = max(s[1] for s in samples)
    assert peak_in_flight <= MAX_IN_FLIGHT, "in-flight exceeded its bound"
    pauses = worker.log_path.read_text().count("pausing consumption")
    assert peak_rss - baseline_rss < RSS_GROWTH_BOUND_MB
    produce_rate, drain_rate = BURST / produced_s, BURST / drained_s
    report("overload", burst=BURST, produce_msgs_per_s=round(produce_rate), worker_msgs_per_s=round(drain_rate),
           burst_to_capacity=round(produce_rate / drain_rate, 1), max_in_flight=MAX_IN_FLIGHT,
           peak_in_flight=int(peak_in_flight), pauses=pauses, rss_mb_before=round(baseline_rss), rss_mb_peak=round(peak_rss),
           lost=0, drained_after_s=round(drained_s, 1))
