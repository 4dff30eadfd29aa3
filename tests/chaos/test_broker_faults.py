"""Broker faults: frozen for 20 s under load (SIGSTOP/SIGCONT), and unreachable when a worker starts."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.chaos.load import SteadyLoad, report
from tests.conftest import collect, digit_requests
from workers.devtools.broker import EmbeddedBroker, free_port
from workers.settings import KafkaSettings

pytestmark = [pytest.mark.integration, pytest.mark.chaos]


@pytest.fixture
def own_broker():
    broker = EmbeddedBroker(port=free_port()).start()
    yield broker
    if broker.process and broker.process.poll() is None:
        broker.process.send_signal(signal.SIGCONT)
    broker.stop()


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_broker_frozen_for_20s_then_resumed(own_broker, topics, start_worker, client: str) -> None:
    kafka = KafkaSettings(bootstrap_servers=own_broker.bootstrap_servers, client=client)
    total = 3000
    worker = start_worker("tensor", kafka, topics)
    load = SteadyLoad(kafka, digit_requests(total, topics["input"]), rate=100.0).start()
    worker.wait_for(lambda: worker.metric("workers_messages_out_total") >= 300, 60, "under load")
    own_broker.process.send_signal(signal.SIGSTOP)
    time.sleep(20)
    before = worker.metric("workers_messages_out_total")
    own_broker.process.send_signal(signal.SIGCONT)
    resumed = time.monotonic()
    worker.wait_for(lambda: worker.metric("workers_messages_out_total") > before, 120, "producing after the stall")
    recovery_s = time.monotonic() - resumed
    load.join()
    assert worker.process.poll() is None, "the worker died during the stall"

    expected = {f"r{i}" for i in range(total)}
    seen: set[str] = set()
    collect(kafka, [topics["output"]], lambda rs: (seen.add(json.loads(rs[-1].value)["id"]), expected <= seen)[1],
            timeout_s=180)
    assert seen == expected, f"{len(expected - seen)} lost"
    assert worker.process.poll() is None and worker.http_status("/v2/health/live") == 200
    report(f"broker_stall[{client}]", load_msgs_per_s=100, messages=total, stall_s=20, lost=0,
           producer_retries=load.retried, recovery_s=round(recovery_s, 1))


def test_broker_unreachable_at_start_up_is_retried_then_served(topics, start_worker, tmp_path) -> None:
    port = free_port()
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}", client="confluent")
    worker = start_worker("tensor", kafka, topics, wait_ready=False)
    worker.wait_for(lambda: "no Kafka broker reachable" in worker.log(), 30, "saying why it waits")
    time.sleep(6)
    assert worker.process.poll() is None
    assert worker.http_status("/v2/health/live") == 200 and worker.http_status("/v2/health/ready") == 503
    broker = EmbeddedBroker(port=port).start()
    try:
        came_up = time.monotonic()
        worker.wait_for(lambda: worker.http_status("/v2/health/ready") == 200, 90, "ready once the broker is up")
        ready_s = time.monotonic() - came_up
        from workers.client import send

        send(kafka, digit_requests(50, topics["input"]))
        got = collect(kafka, [topics["output"]], lambda rs: len(rs) >= 50, timeout_s=60)
        assert len(got) == 50
    finally:
        broker.stop()
    log = worker.log_path.read_text()
    assert "Traceback" not in log, log
    waits = log.count("no Kafka broker reachable")
    assert 2 <= waits <= 10, f"{waits} wait lines: backoff should keep them few"
    report("broker_unreachable_at_start", wait_log_lines=waits, tracebacks=0, ready_after_broker_up_s=round(ready_s, 1))


def test_broker_never_reachable_gives_a_clear_error_and_exit_code(topics, start_worker) -> None:
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", client="kafka-python")
    worker = start_worker("tensor", kafka, topics, wait_ready=False, KAFKA_STARTUP_TIMEOUT_S="4")
    assert worker.process.wait(60) == 2
    log = worker.log_path.read_text()
    assert "no Kafka broker reachable" in log and "giving up" in log and "Traceback" not in log, log
