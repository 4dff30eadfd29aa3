"""A Keras GRU leaves the export as ONNX's GRU op, not tf2onnx's step-by-step Loop, with the same outputs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from export import ExportReport, export_keras
from export.native_gru import native_gru_file

pytestmark = pytest.mark.slow
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")


def ops(path: Path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def test_a_streaming_gru_with_state_in_and_out_exports_as_one_gru_op(tmp_path: Path) -> None:
    """The ASR model's shape: a sequence and a carried state in, every step's output and the last state out."""
    keras.utils.set_random_seed(2)
    frames, state = keras.Input((None, 5), name="frames"), keras.Input((7,), name="state")
    sequence, last = keras.layers.GRU(7, return_sequences=True, return_state=True)(frames, initial_state=state)
    model = keras.Model([frames, state], {"steps": keras.layers.Identity(name="steps")(sequence),
                                          "next_state": keras.layers.Identity(name="next_state")(last)})
    rng = np.random.default_rng(0)
    samples = {"frames": rng.normal(size=(3, 11, 5)).astype(np.float32),
               "state": rng.normal(size=(3, 7)).astype(np.float32)}
    signature = [tf.TensorSpec([None, None, 5], tf.float32, name="frames"),
                 tf.TensorSpec([None, 7], tf.float32, name="state")]
    report = export_keras(model, signature, tmp_path / "m.onnx", samples)
    assert report.native_gru and "recurrent" in report.as_manifest()
    assert ops(report.path)["GRU"] == 1 and ops(report.path)["Loop"] == 0
    assert max(report.max_abs_diff.values()) < 1e-5
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    one_step = {"frames": samples["frames"][:, :1], "state": samples["state"]}  # a chunk of one frame
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, one_step), strict=True))
    want = model(one_step, training=False)
    np.testing.assert_allclose(got["next_state"], np.asarray(want["next_state"]), atol=1e-5)


def classifier(tmp_path: Path, recurrent: object) -> ExportReport:
    """A recurrent layer's last state -> 3 scores, over 12 steps of 4 features, exported."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape=(12, 4), name="frames")
    outputs = keras.layers.Dense(3, name="scores")(recurrent(inputs))
    x = np.random.default_rng(0).normal(size=(5, 12, 4)).astype(np.float32)
    return export_keras(keras.Model(inputs, outputs), [tf.TensorSpec([None, 12, 4], tf.float32, name="frames")],
                        tmp_path / "m.onnx", samples={"frames": x})


def test_the_last_state_only_gru_exports_as_one_gru_op_too(tmp_path: Path) -> None:
    report = classifier(tmp_path, keras.layers.GRU(6))
    assert report.native_gru and ops(report.path)["GRU"] == 1 and ops(report.path)["Loop"] == 0


def test_a_loop_graph_on_disk_is_rewritten_only_after_its_outputs_are_checked(tmp_path: Path) -> None:
    """How the committed ASR model (exported before the rewrite) was converted: ``native_gru_file``."""
    import tf2onnx

    keras.utils.set_random_seed(3)
    frames, state = keras.Input((None, 4), name="frames"), keras.Input((5,), name="state")
    sequence, last = keras.layers.GRU(5, return_sequences=True, return_state=True)(frames, initial_state=state)
    model = keras.Model([frames, state], [sequence, last])
    signature = [tf.TensorSpec([None, None, 4], tf.float32, name="frames"),
                 tf.TensorSpec([None, 5], tf.float32, name="state")]
    loop_graph, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=17)
    onnx.save(loop_graph, str(tmp_path / "m.onnx"))
    assert ops(tmp_path / "m.onnx")["Loop"] == 1
    rng = np.random.default_rng(0)
    feeds = [{"frames": rng.normal(size=(b, t, 4)).astype(np.float32), "state": rng.normal(size=(b, 5)).astype(np.float32)}
             for b, t in [(1, 1), (3, 9)]]
    before = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds[1])
    assert native_gru_file(tmp_path / "m.onnx", feeds) < 1e-5
    assert ops(tmp_path / "m.onnx")["GRU"] == 1 and ops(tmp_path / "m.onnx")["Loop"] == 0
    after = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds[1])
    for old, new in zip(before, after, strict=True):
        np.testing.assert_allclose(new, old, atol=1e-5)
    assert native_gru_file(tmp_path / "m.onnx", feeds) is None  # nothing left to rewrite


def test_a_loop_that_is_no_gru_is_kept_and_the_export_still_succeeds(tmp_path: Path) -> None:
    """A simple RNN's loop has a GRU's two MatMuls but no gates: it stays a Loop, and still matches Keras."""
    report = classifier(tmp_path, keras.layers.SimpleRNN(4))
    assert not report.native_gru and "recurrent" not in report.as_manifest()
    assert ops(report.path)["GRU"] == 0 and ops(report.path)["Loop"] == 1 and report.max_abs_diff["scores"] < 1e-5
