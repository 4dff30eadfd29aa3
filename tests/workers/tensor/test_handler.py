import json

import numpy as np
import pytest

from models import ARTIFACTS
from workers.engine.handler import InvalidMessage, Pending
from workers.settings import OnnxSettings
from workers.toolkit.codec import MAX_MESSAGE_BYTES
from workers.tensor.handler import TensorHandler
from workers.transport.records import Record

SAMPLES = [json.loads(line) for line in (ARTIFACTS / "digits" / "samples.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def handler() -> TensorHandler:
    return TensorHandler(ARTIFACTS / "digits", OnnxSettings(providers=["CPUExecutionProvider"]))


def record(value: bytes, key: bytes | None = b"k") -> Record:
    return Record("tensor.requests", 0, 5, key, value)


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (b"\xff", "invalid_utf8"),
        (b"{", "invalid_json"),
        (b'"text"', "wrong_type"),
        (b'{"inputs": {"pixels": [1]}, "id": true}', "wrong_type"),
        (b'{"id": "x"}', "missing_field"),
        (b'{"id": "x", "inputs": {"other": []}}', "missing_field"),
        (b'{"id": "x", "inputs": {"pixels": [[1, 2]]}}', "wrong_shape"),
        (b'{"id": "x", "inputs": {"pixels": ["a"]}}', "wrong_type"),
        (b'{"id": "x", "inputs": {"pixels": [NaN]}}', "invalid_json"),
        (json.dumps({"id": "x", "inputs": {"pixels": [1e300] * 64}}).encode(), "not_finite"),
        (b" " * (MAX_MESSAGE_BYTES + 1), "too_large"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(handler: TensorHandler, value: bytes, code: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        handler.decode(record(value))
    assert caught.value.code == code and caught.value.detail


def test_a_batch_is_classified_like_the_model_says(handler: TensorHandler) -> None:
    items = []
    for sample in SAMPLES[:40]:
        key, value = handler.decode(record(json.dumps({"id": sample["id"], "inputs": sample["inputs"]}).encode()))
        items.append(Pending(record(b""), key, value))
    outcomes = handler.process(items)
    results = [json.loads(o[0].value) for o in outcomes]
    accuracy = np.mean([r["label"] == s["label"] for r, s in zip(results, SAMPLES[:40], strict=True)])
    assert accuracy >= 0.9
    assert [r["id"] for r in results] == [s["id"] for s in SAMPLES[:40]]
    assert abs(sum(results[0]["outputs"]["probabilities"]) - 1) < 1e-4
    assert results[0]["model_version"] == handler.model.version
