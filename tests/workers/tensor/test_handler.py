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


@pytest.fixture(scope="module")
def int_handler(tmp_path_factory: pytest.TempPathFactory) -> TensorHandler:
    """A real ONNX model with an int64 input of 3 values per example (summed as float), to check dtypes."""
    import onnx
    from onnx import TensorProto, helper

    from workers.runtime.artifact import write_manifest

    graph = helper.make_graph(
        [helper.make_node("Cast", ["ids"], ["as_float"], to=TensorProto.FLOAT),
         helper.make_node("ReduceSum", ["as_float", "axes"], ["total"], keepdims=1)],
        "sum", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 3])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, ["batch", 1])],
        [helper.make_tensor("axes", TensorProto.INT64, [1], [1])])
    out = tmp_path_factory.mktemp("int-model")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(out / "model.onnx"))
    write_manifest(out, {"name": "sum", "version": "1", "inputs": [{"name": "ids", "dtype": "int64", "shape": ["batch", 3]}],
                         "outputs": [{"name": "total", "dtype": "float32", "shape": ["batch", 1]}]})
    return TensorHandler(out, OnnxSettings(providers=["CPUExecutionProvider"]))


@pytest.mark.parametrize(
    ("ids", "code"),
    [([1, 2], "wrong_shape"), ([[1, 2, 3]], "wrong_shape"), ([1, [2], 3], "wrong_shape"), ([1.5, 2, 3], "wrong_dtype"),
     ([2**70, 0, 0], "out_of_range"), (["1", 2, 3], "wrong_type")],
)
def test_an_integer_input_refuses_what_it_cannot_hold_and_says_what_it_takes(int_handler: TensorHandler, ids: object,
                                                                             code: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        int_handler.decode(record(json.dumps({"id": "x", "inputs": {"ids": ids}}).encode()))
    assert caught.value.code == code
    assert code == "wrong_type" or "int64 of shape [3]" in caught.value.detail


def test_an_integer_input_takes_whole_numbers_written_as_floats(int_handler: TensorHandler) -> None:
    key, value = int_handler.decode(record(b'{"id": "a", "inputs": {"ids": [1.0, 2, 40]}}'))
    [outcome] = int_handler.process([Pending(record(b""), key, value)])
    assert json.loads(outcome[0].value)["outputs"]["total"] == [43.0]
