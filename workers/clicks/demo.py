"""``workers demo`` traffic of the clicks worker: synthetic shopping sessions, sent in time order."""

from __future__ import annotations

import json
import time
from typing import Any

from workers.devtools.traffic import MALFORMED_EVERY, DemoTraffic
from workers.transport.records import OutgoingRecord


def clicks_workload(rate: float) -> DemoTraffic:
    from workers.clicks.events import sessions, to_json
    from workers.clicks.synthetic import generate

    stream = generate(400, seed=99, days=0.05)  # ~20 sessions live at a time; sent in time order, cycling
    following = {}
    for evs in sessions(stream).values():
        for n, (event, nxt) in enumerate(zip(evs, evs[1:])):
            following[(event.session_id, n)] = nxt.item_id
    positions: dict[str, int] = {}
    workload: DemoTraffic

    def make(i: int) -> tuple[OutgoingRecord, str | None]:
        if i % MALFORMED_EVERY == MALFORMED_EVERY - 1:
            body = {"session_id": "broken", "item_id": "i1", "event_type": "teleport", "ts": time.time()}
            return OutgoingRecord("clicks.events", json.dumps(body).encode(), b"broken"), None
        cycle, event = divmod(i, len(stream))[0], stream[i % len(stream)]
        session = f"{event.session_id}.{cycle}"
        position = positions.get(session, -1) + 1
        positions[session] = position
        key = f"{session}/{position}"
        if (event.session_id, position) in following:
            workload.expected[key] = following[(event.session_id, position)]
        body = to_json(event) | {"session_id": session, "ts": time.time()}
        return OutgoingRecord("clicks.events", json.dumps(body).encode(), session.encode()), key

    def show(result: dict[str, Any], expected: dict[str, str]) -> tuple[str, bool]:
        actual = expected.get(f"{result['session_id']}/{result['position']}")
        ranked = [i["item_id"] for i in result["next_items"]]
        verdict = "session ends" if actual is None else (
            f"next {actual} at #{ranked.index(actual) + 1}" if actual in ranked else f"next {actual} not in top {len(ranked)}")
        return (f"{result['session_id']:<9} {result['item_id']:<5} -> {', '.join(ranked[:3])}, ... "
                f"buy p={result.get('purchase_probability', float('nan')):.2f}; {verdict}"), actual in ranked

    workload = DemoTraffic("clicks", "behaviour prediction", "clicks.events", "clicks.predictions", make, show,
                           summary=lambda w: f", actual next item in the top 20: {w.correct / max(1, w.results):.2f} "
                           "(a session's last event counts as a miss)")
    return workload
