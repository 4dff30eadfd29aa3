"""The `--processes` supervisor without Kafka: per-child settings, restart budget, clean stop."""

from __future__ import annotations

import sys
import threading
import time

from workers import supervise
from workers.supervise import Supervisor, child_environment


def test_children_get_their_own_metrics_port_and_a_share_of_the_cores(monkeypatch) -> None:
    monkeypatch.setattr(supervise.os, "cpu_count", lambda: 8)
    env = child_environment(2, 4, 9400, {"KAFKA_BOOTSTRAP_SERVERS": "b:9092"})
    assert env["WORKERS_METRICS_PORT"] == "9402" and env["WORKERS_ONNX_INTRA_OP_NUM_THREADS"] == "2"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "b:9092"
    assert child_environment(1, 2, 0, {})["WORKERS_METRICS_PORT"] == "0"  # any port stays any port
    explicit = child_environment(0, 4, 9400, {"WORKERS_ONNX_INTRA_OP_NUM_THREADS": "3"})
    assert explicit["WORKERS_ONNX_INTRA_OP_NUM_THREADS"] == "3"


def test_a_child_that_keeps_dying_is_restarted_then_the_supervisor_gives_up(monkeypatch) -> None:
    monkeypatch.setattr(supervise, "MAX_RESTARTS", 3)
    supervisor = Supervisor([sys.executable, "-c", "raise SystemExit(3)"], 1, 0)
    assert supervisor.run() == 1
    assert len(supervisor.restarts) == 3


def test_stop_terminates_every_child_and_exits_zero() -> None:
    supervisor = Supervisor([sys.executable, "-c", "import time; time.sleep(60)"], 2, 0)
    threading.Timer(1.0, supervisor.stop).start()
    started = time.monotonic()
    assert supervisor.run() == 0
    assert time.monotonic() - started < 10
    assert all(child.poll() is not None for child in supervisor.children.values())
