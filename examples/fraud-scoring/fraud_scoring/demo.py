"""``workers demo`` traffic: generated transactions, sent in time order, with their truth kept aside."""

from __future__ import annotations

import json
import time
from typing import Any

from fraud_scoring.data import generate
from workers.devtools.traffic import MALFORMED_EVERY, DemoTraffic
from workers.transport.records import OutgoingRecord


def transactions(rate: float) -> DemoTraffic:
    stream = generate(2_000, seed=5, fraud_rate=0.1)
    workload: DemoTraffic

    def make(i: int) -> tuple[OutgoingRecord, str | None]:
        if i % MALFORMED_EVERY == MALFORMED_EVERY - 1:
            body = {"transaction_id": f"bad-{i}", "card_id": "card-x", "ts": time.time(), "amount": -5}
            return OutgoingRecord("payments.transactions", json.dumps(body).encode(), b"card-x"), None
        t = stream[i % len(stream)]
        tid = f"{t.transaction_id}.{i // len(stream)}"
        workload.expected[tid] = "fraud" if t.fraud else "ok"
        body = t.message() | {"transaction_id": tid}
        return OutgoingRecord("payments.transactions", json.dumps(body).encode(), t.card_id.encode()), tid

    def show(result: dict[str, Any], expected: dict[str, str]) -> tuple[str, bool]:
        truth = expected.get(str(result["transaction_id"]), "?")
        ok = result["alert"] == (truth == "fraud")
        return (f"{result['transaction_id']:<16} p={result['fraud_probability']:.2f} "
                f"{'ALERT' if result['alert'] else 'ok   '} truth {truth}"), ok

    workload = DemoTraffic("fraud", "card fraud scoring (example plug-in)", "payments.transactions",
                           "payments.fraud_scores", make, show,
                           summary=lambda w: f", alert right {w.correct / max(1, w.results):.3f} of the time")
    return workload
