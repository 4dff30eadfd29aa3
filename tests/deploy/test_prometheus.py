"""A real Prometheus server scrapes a real worker under traffic; every dashboard query and every alert
signal must return data from it, and promtool accepts (and unit-tests) the alert rules.

Prometheus is Debian's ``prometheus`` package: installed here when missing and we are root (as in CI).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from workers.devtools.broker import free_port
from workers.client import send
from workers.clicks.events import to_json
from workers.clicks.synthetic import generate
from workers.transport.records import OutgoingRecord

pytestmark = pytest.mark.integration
DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "workers.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"


def prometheus_binaries() -> tuple[str, str]:
    if not shutil.which("prometheus") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "prometheus"],
                       check=True, env=env, capture_output=True)
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if not (prometheus and promtool):
        pytest.skip("needs Debian's prometheus package (apt-get install prometheus; installed automatically as root)")
    return prometheus, promtool


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) with the dashboard's variables filled in as Grafana would."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [(p["title"], t["expr"].replace("$worker", ".+").replace("$__rate_interval", "30s"))
            for p in panels for t in p["targets"]]


def alert_signals() -> list[tuple[str, str]]:
    """(alert name, the expression left of its final comparison): the series the alert watches."""
    signals = []
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            match = re.fullmatch(r"(.+?)\s*(==|!=|>=|<=|>|<)\s*[-+0-9.e]+\s*", rule["expr"].strip())
            assert match, f"{rule['alert']}: expression must end in '<comparison> <threshold>'"
            signals.append((rule["alert"], match.group(1)))
    return signals


class Prometheus:
    def __init__(self, binary: str, tmp: Path, target: str) -> None:
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": "workers", "static_configs": [{"targets": [target]}]}],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = open(tmp / "prometheus.log", "wb")
        self.process = subprocess.Popen(
            [binary, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"], stdout=self.log, stderr=subprocess.STDOUT)

    def api(self, path: str, **params: str) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    def query(self, expr: str) -> list[dict]:
        answer = self.api("query", query=expr)
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


@pytest.fixture
def prometheus_and_worker(broker, topics, start_worker, tmp_path: Path) -> Iterator[Prometheus]:
    from workers.settings import KafkaSettings

    binary, _ = prometheus_binaries()
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, client="confluent")
    # A small key cap so the eviction series exist too.
    worker = start_worker("clicks", kafka, topics, WORKERS_MAX_KEYS="20")
    server = Prometheus(binary, tmp_path, f"127.0.0.1:{worker.metrics_port}")
    stop = threading.Event()

    def traffic() -> None:
        events, n = generate(400, seed=8, days=0.01), 0
        while not stop.is_set() and n < 20:  # bounded: at most 20 rounds of ~0.5 s
            batch = [OutgoingRecord(topics["input"], json.dumps(to_json(e) | {"ts": time.time()}).encode(),
                                    e.session_id.encode()) for e in events[n * 100 % len(events):][:100]]
            batch.append(OutgoingRecord(topics["input"], b'{"session_id": "x", "ts": 1', b"x"))  # malformed
            send(kafka, batch)
            n += 1
            stop.wait(0.5)

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if server.query('sum(workers_messages_out_total{job="workers"}) > 200') and \
                        server.query('count(count_over_time(up{job="workers"}[1m]) >= 8)'):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("Prometheus never scraped results of the worker:\n" + (tmp_path / "prometheus.log").read_text()[-3000:])
        yield server
    finally:
        stop.set()
        sender.join(30)
        server.stop()


def test_every_dashboard_query_and_alert_signal_returns_live_data(prometheus_and_worker: Prometheus) -> None:
    server = prometheus_and_worker
    empty = []
    for name, expr in dashboard_queries() + alert_signals():
        result = server.query(expr)
        values = [float(s["value"][1]) for s in result]
        if not any(math.isfinite(v) for v in values):
            empty.append(f"{name}: {expr} -> {result}")
    assert not empty, "queries without data:\n" + "\n".join(empty)

    deadline = time.monotonic() + 10  # the rules are loaded and evaluate without errors
    while True:
        rules = [r for g in server.api("rules")["data"]["groups"] for r in g["rules"]]
        if len(rules) == len(alert_signals()) and all(r.get("lastEvaluation", "").startswith("2") and
                                                       not r["lastEvaluation"].startswith("0001") for r in rules):
            break
        assert time.monotonic() < deadline, rules
        time.sleep(0.5)
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]


def test_promtool_checks_and_unit_tests_the_rules() -> None:
    _, promtool = prometheus_binaries()
    subprocess.run([promtool, "check", "rules", str(ALERTS)], check=True, capture_output=True)
    subprocess.run([promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")], check=True, capture_output=True)
    tested = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=DEPLOY / "prometheus",
                            capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_dashboard_uses_the_provisioned_datasource_and_covers_the_operator_questions() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    datasource = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    assert all(p["datasource"]["uid"] == uid for p in dashboard["panels"])
    text = json.dumps(dashboard)
    for metric in ("workers_messages_out_total", "workers_end_to_end_latency_seconds_bucket", "workers_batch_size",
                   "workers_inference_seconds_bucket", "workers_consumer_lag", "workers_messages_dlq_total",
                   "workers_in_flight", "workers_model_info"):
        assert metric in text
