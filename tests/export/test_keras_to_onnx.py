"""The export path: a tiny TF model -> tf2onnx -> onnx.checker -> ONNX Runtime -> same outputs as TF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from export import ParityError, export_keras

pytestmark = pytest.mark.slow
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


def tiny_model() -> object:
    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape=(12, 4), name="frames")
    h = keras.layers.Conv1D(8, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.GRU(6)(h)
    outputs = keras.layers.Dense(3, activation="softmax", name="scores")(h)
    return keras.Model(inputs, outputs)


def test_tiny_tf_model_exports_checks_loads_and_matches_tensorflow(tmp_path: Path) -> None:
    model = tiny_model()
    x = np.random.default_rng(0).normal(size=(5, 12, 4)).astype(np.float32)
    report = export_keras(model, [tf.TensorSpec([None, 12, 4], tf.float32, name="frames")], tmp_path / "m.onnx",
                          samples={"frames": x})

    onnx.checker.check_model(onnx.load(str(report.path)), full_check=True)
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"frames": x})
    np.testing.assert_allclose(got, model(x, training=False).numpy(), atol=1e-5)
    assert report.max_abs_diff["scores"] < 1e-5
    assert report.inputs == [{"name": "frames", "dtype": "float", "shape": ["batch", 12, 4]}]


def test_parity_failure_is_an_error_not_a_warning(tmp_path: Path) -> None:
    model = tiny_model()
    x = np.random.default_rng(0).normal(size=(2, 12, 4)).astype(np.float32)
    with pytest.raises(ParityError):
        export_keras(model, [tf.TensorSpec([None, 12, 4], tf.float32, name="frames")], tmp_path / "m.onnx",
                     samples={"frames": x}, atol=-1.0)  # no real export can meet a negative tolerance
