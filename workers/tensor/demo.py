"""``workers demo`` traffic of the tensor worker: the digits classifier's held-out samples, with their truth."""

from __future__ import annotations

import json
from typing import Any

from models import ARTIFACTS
from workers.devtools.traffic import MALFORMED_EVERY, DemoTraffic
from workers.transport.records import OutgoingRecord


def digits_workload(rate: float) -> DemoTraffic:
    samples = [json.loads(line) for line in (ARTIFACTS / "digits" / "samples.jsonl").read_text().splitlines()]
    bad = [b'{"id": "broken", "inputs": ', b'{"id": "no-inputs"}', b'{"id": "short", "inputs": {"pixels": [1, 2, 3]}}',
           b"\xff\xfe\x00garbage", json.dumps({"id": "overflow", "inputs": {"pixels": [1e39] * 64}}).encode()]
    workload: DemoTraffic

    def make(i: int) -> tuple[OutgoingRecord, str | None]:
        if i % MALFORMED_EVERY == MALFORMED_EVERY - 1:
            return OutgoingRecord("tensor.requests", bad[(i // MALFORMED_EVERY) % len(bad)], b"bad"), None
        sample = samples[i % len(samples)]
        request_id = f"{sample['id']}#{i}"
        workload.expected[request_id] = sample["label"]
        return OutgoingRecord("tensor.requests", json.dumps({"id": request_id, "inputs": sample["inputs"]}).encode(),
                              request_id.encode()), request_id

    def show(result: dict[str, Any], expected: dict[str, str]) -> tuple[str, bool]:
        want = expected.get(result["id"], "?")
        ok = result["label"] == want
        return f"{result['id']:<14} -> {result['label']} (p={result['score']:.3f}) truth {want} {'ok' if ok else 'MISS'}", ok

    workload = DemoTraffic("tensor", "digits classifier", "tensor.requests", "tensor.results", make, show,
                           summary=lambda w: f", accuracy {w.correct / max(1, w.results):.3f} against the true digits")
    return workload
