"""Click events end to end through the real broker: interleaved sessions get the predictions that
``workers predict clicks`` makes offline on the same events; bad events land in the DLQ."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, collect
from workers.client import send
from workers.clicks.events import to_json, write_events
from workers.clicks.synthetic import generate
from workers.transport.records import OutgoingRecord

pytestmark = pytest.mark.integration


def same_top_items(ours: list[dict], theirs: list[dict]) -> bool:
    """Equal rankings, allowing near-ties (float noise of different batch sizes) to swap places."""
    if len(ours) != len(theirs):
        return False
    for a, b in zip(ours, theirs):
        if abs(a["score"] - b["score"]) > 1e-5:
            return False
    boundary = theirs[-1]["score"]
    want = {i["item_id"] for i in theirs if i["score"] > boundary + 1e-5}
    got = {i["item_id"] for i in ours}
    return want <= got


def test_interleaved_sessions_match_offline_predictions(broker, topics, start_worker, tmp_path: Path) -> None:
    from workers.settings import KafkaSettings

    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, client="confluent")
    start_worker("clicks", kafka, topics)
    events = generate(30, seed=21, days=0.003)  # 30 sessions within ~4 minutes: they interleave
    assert len({e.session_id for e in events[:10]}) > 3
    records = [OutgoingRecord(topics["input"], json.dumps(to_json(e)).encode(), e.session_id.encode()) for e in events]
    bad = [OutgoingRecord(topics["input"], b'{"session_id": "s0", "ts": 1}', b"s0"),
           OutgoingRecord(topics["input"], json.dumps({"session_id": "s0", "item_id": "i1", "event_type": "refund", "ts": 1}).encode(), b"s0")]
    send(kafka, records[:5] + bad + records[5:])

    got = collect(kafka, [topics["output"], topics["dlq"]], lambda rs: len(rs) >= len(records) + len(bad))
    online = {(p["session_id"], p["position"]): p for p in (json.loads(r.value) for r in got if r.topic == topics["output"])}
    assert len(online) == len(events)
    dead = sorted((r.header("dlq.reason") or b"").decode() for r in got if r.topic == topics["dlq"])
    assert dead == ["missing_field", "unknown_event_type"]

    log = tmp_path / "events.tsv"
    write_events(events, log)
    out = subprocess.run([sys.executable, "-m", "workers", "predict", "clicks", "--events", str(log), "--k", "20"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    offline = [json.loads(line) for line in out.splitlines()]
    assert len(offline) == len(events) - len({e.session_id for e in events})  # every event but each session's last
    for line in offline:
        prediction = online[(line["session_id"], line["position"])]
        assert same_top_items(prediction["next_items"], line["next_items"]), (prediction, line)
        assert prediction["purchase_probability"] == pytest.approx(line["purchase_probability"], abs=1e-5)
