"""Model hot reload under traffic: a new version published in the model directory is loaded, warmed
and switched to between batches; no message is lost or dead-lettered, and results name the version."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from models import ARTIFACTS
from tests.conftest import collect, digit_requests
from workers.client import send

pytestmark = pytest.mark.integration
CHUNK = 100
MIN_MESSAGES = 3000


def publish_version(model_dir: Path, version: str) -> None:
    """How an operator publishes: files first, then manifest.json replaced atomically."""
    manifest = json.loads((model_dir / "manifest.json").read_text())
    manifest["version"] = version
    staged = model_dir / "manifest.json.tmp"
    staged.write_text(json.dumps(manifest, indent=2))
    staged.replace(model_dir / "manifest.json")


def test_new_model_version_is_switched_to_under_traffic(broker, kafka, topics, start_worker, tmp_path: Path) -> None:
    model_dir = tmp_path / "digits"
    shutil.copytree(ARTIFACTS / "digits", model_dir)
    publish_version(model_dir, "v1")
    worker = start_worker("tensor", kafka, topics, WORKERS_MODEL_DIR=str(model_dir), WORKERS_MODEL_POLL_S="0.2")

    # Traffic keeps flowing until v2 has answered some of it, so the switch always happens under load
    # (a fixed amount could be drained before the reload lands: the group join alone takes seconds).
    sent = 0
    switched = threading.Event()

    def traffic() -> None:
        nonlocal sent
        deadline = time.monotonic() + 120
        while sent < MIN_MESSAGES or (not switched.is_set() and time.monotonic() < deadline):
            send(kafka, digit_requests(CHUNK, topics["input"], start=sent))
            sent += CHUNK
            time.sleep(0.2)
        for _ in range(5):  # and a little more after the switch
            send(kafka, digit_requests(CHUNK, topics["input"], start=sent))
            sent += CHUNK
            time.sleep(0.2)

    sender = threading.Thread(target=traffic)
    sender.start()
    worker.wait_for(lambda: worker.metric("workers_messages_out_total", version="v1") >= 500, 60, "v1 traffic")
    publish_version(model_dir, "v2")
    try:
        worker.wait_for(lambda: worker.metric("workers_messages_out_total", version="v2") > 0, 60, "v2 results")
    finally:
        switched.set()
        sender.join()
    n = sent

    got = collect(kafka, [topics["output"], topics["dlq"]], lambda rs: len(rs) >= n)
    assert not [r for r in got if r.topic == topics["dlq"]]
    results = [r for r in got if r.topic == topics["output"]]
    assert sorted(json.loads(r.value)["id"] for r in results) == sorted(f"r{i}" for i in range(n))  # none lost
    by_partition: dict[int, list[str]] = {}
    for r in sorted(results, key=lambda r: (r.partition, r.offset)):
        by_partition.setdefault(int(r.header("source.partition")), []).append(json.loads(r.value)["model_version"])
    versions = [v for seq in by_partition.values() for v in seq]
    assert versions.count("v1") > 0 and versions.count("v2") > 0
    for seq in by_partition.values():  # each partition switches once, from v1 to v2, never back
        assert seq == sorted(seq), seq

    assert worker.metric("workers_model_reloads_total", outcome="ok") == 1
    assert worker.metric("workers_model_info", version="v2") == 1 and worker.metric("workers_model_info", version="v1") == 0
    assert worker.metric("workers_messages_out_total", version="v2") > 0
