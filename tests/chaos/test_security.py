"""Security: TLS to the broker end to end, SASL settings reach the clients but never the logs, and the
metrics/health endpoints bind where they are told."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.chaos.load import report
from tests.conftest import REPO, collect, digit_requests
from workers.devtools.broker import EmbeddedBroker, free_port
from workers.client import send
from workers.http import Health, MetricsServer
from workers.settings import KafkaSettings

pytestmark = [pytest.mark.integration, pytest.mark.chaos]
SECRET = "s3cret-never-log-me"


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "broker.pem", tmp_path / "broker-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_worker_serves_through_a_tls_broker(topics, start_worker, tmp_path: Path, client: str) -> None:
    cert, key = self_signed(tmp_path)
    broker = EmbeddedBroker(port=free_port(), cert=cert, key=key).start()
    try:
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, client=client, security_protocol="SSL",
                              ssl_cafile=str(cert))
        worker = start_worker("tensor", kafka, topics, KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(cert))
        send(kafka, digit_requests(100, topics["input"]))
        got = collect(kafka, [topics["output"]], lambda rs: len(rs) >= 100, timeout_s=90)
        assert len(got) == 100 and worker.process.poll() is None
        plaintext = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, client="kafka-python",
                                  startup_timeout_s=2)
        from workers.transport.factory import BrokerUnavailable, ensure_topics

        with pytest.raises(BrokerUnavailable):  # the broker speaks TLS only
            ensure_topics(plaintext, {"never": 1})
    finally:
        broker.stop()
    report(f"tls[{client}]", messages=100, lost=0, plaintext_refused=True)


def test_sasl_password_reaches_the_clients_but_never_logs_or_settings_output(topics, start_worker) -> None:
    from workers.transport.kafka_python import client_config

    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", security_protocol="SASL_SSL",
                          sasl_mechanism="SCRAM-SHA-512", sasl_username="svc", sasl_password=SECRET)
    assert client_config(kafka)["sasl_plain_password"] == SECRET  # passed through to the client library
    assert SECRET not in json.dumps(kafka.redacted())

    worker = start_worker("tensor", kafka, topics, wait_ready=False, KAFKA_SASL_PASSWORD=SECRET,
                          KAFKA_SECURITY_PROTOCOL="SASL_SSL", KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
                          KAFKA_SASL_USERNAME="svc", KAFKA_STARTUP_TIMEOUT_S="3", WORKERS_LOG_LEVEL="DEBUG")
    worker.process.wait(60)
    log = worker.log_path.read_text()
    assert "svc" in log and SECRET not in log  # the settings are logged, the password is not
    shown = subprocess.run([sys.executable, "-m", "workers", "settings", "--current"], cwd=REPO, capture_output=True,
                           text=True, env={"KAFKA_SASL_PASSWORD": SECRET, "PATH": "/usr/bin:/bin"}, check=True).stdout
    assert SECRET not in shown and "**" in shown
    report("secrets", password_in_worker_log=False, password_in_settings_output=False)


def test_metrics_and_health_bind_to_the_configured_address() -> None:
    server = MetricsServer("127.0.0.2", 0, Health()).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.2:{server.port}/v2/health/live", timeout=2) as response:
            assert response.status == 200
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/v2/health/live", timeout=2)
    finally:
        server.stop()
