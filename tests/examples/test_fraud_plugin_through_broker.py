"""The example workload under examples/ is a separate distribution: installed beside this package (no file
under workers/ names it), `workers serve fraud` serves it through the real broker with results, per-card
state, the dead-letter topic and its own metrics, like any built-in workload."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, collect, send
from workers.settings import KafkaSettings
from workers.transport.records import OutgoingRecord

pytestmark = pytest.mark.integration
EXAMPLE = REPO / "examples" / "fraud-scoring"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example installed as users install a plug-in (pip, its entry point), into a folder of its own."""
    target, source = tmp_path_factory.mktemp("site"), tmp_path_factory.mktemp("src") / "fraud-scoring"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True, timeout=300)
    return target


def test_no_file_under_workers_names_the_example() -> None:
    named = [p for p in (REPO / "workers").rglob("*.py") if "fraud" in p.read_text().lower()]
    assert named == []


def test_the_cli_knows_the_plugin_once_it_is_installed(installed: Path) -> None:
    env = {"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"}
    shown = subprocess.run([sys.executable, "-m", "workers", "settings"], cwd=REPO, env=env, capture_output=True,
                           text=True, check=True).stdout
    assert "WORKERS_FRAUD_ALERT_THRESHOLD" in shown and "### `fraud:`" in shown
    helped = subprocess.run([sys.executable, "-m", "workers", "serve", "--help"], cwd=REPO, env=env,
                            capture_output=True, text=True, check=True).stdout
    assert "fraud" in helped
    trains = subprocess.run([sys.executable, "-m", "workers", "train", "--help"], cwd=REPO, env=env,
                            capture_output=True, text=True, check=True).stdout
    assert "fraud" in trains


def test_the_plugin_serves_through_the_broker(installed: Path, kafka: KafkaSettings, topics: dict[str, str],
                                              start_worker) -> None:
    sys.path.insert(0, str(installed))
    try:
        from fraud_scoring.data import generate, velocity
        from fraud_scoring.settings import FraudSettings
    finally:
        sys.path.remove(str(installed))
    stream = generate(400, seed=321, fraud_rate=0.1)
    window = FraudSettings().velocity_window_s
    expected_recent = dict(zip((t.transaction_id for t in stream), velocity(stream, window).astype(int).tolist(),
                               strict=True))
    worker = start_worker("fraud", kafka, topics, PYTHONPATH=str(installed))
    records = [OutgoingRecord(topics["input"], json.dumps(t.message()).encode(), t.card_id.encode()) for t in stream]
    bad = json.dumps({"transaction_id": "bad", "card_id": "c", "ts": 1.8e9, "amount": -5, "merchant_category": "fuel",
                      "distance_km": 1, "card_present": True}).encode()
    records.insert(100, OutgoingRecord(topics["input"], bad, b"c"))
    send(kafka, records)

    got = collect(kafka, [topics["output"], topics["dlq"]], lambda rs: len(rs) >= len(records), timeout_s=120)
    results = [json.loads(r.value) for r in got if r.topic == topics["output"]]
    dead = [r for r in got if r.topic == topics["dlq"]]
    assert len(results) == len(stream) and len(dead) == 1
    assert dead[0].value == bad and dead[0].header("dlq.reason") == b"out_of_range"

    truth = {t.transaction_id: t.fraud for t in stream}
    assert {r["transaction_id"] for r in results} == set(truth)
    assert all(r["recent_transactions"] == expected_recent[r["transaction_id"]] for r in results)  # per-card state
    assert all(0 <= r["fraud_probability"] <= 1 and r["alert"] == (r["fraud_probability"] >= 0.5) for r in results)
    right = sum(r["alert"] == truth[r["transaction_id"]] for r in results) / len(results)
    assert right >= 0.95, right

    worker.wait_for(lambda: worker.metric("workers_messages_out_total", worker="fraud") == len(stream), 30,
                    "counted every result")
    assert worker.metric("workers_fraud_alerts_total") == sum(r["alert"] for r in results)
    assert worker.metric("workers_messages_dlq_total", reason="out_of_range") == 1
    assert worker.stop() == 0
