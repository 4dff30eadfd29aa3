"""export.simplify: tf2onnx's Tensordot, layer-norm and head patterns rewritten into fewer nodes, computing the
same at shapes other than the one the export's parity check used."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from export import export_keras

pytestmark = pytest.mark.slow
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

HEADS, WIDTH = 4, 16


def attention_block() -> object:
    """A pre-norm self-attention block written as models/whisper.py writes Whisper's: Dense on [B, T, W], Keras
    layer norms, heads split with tf.split + tf.stack and merged with tf.unstack + tf.concat."""
    keras.utils.set_random_seed(3)

    def heads(x: object) -> object:
        return tf.stack(tf.split(x, HEADS, axis=-1), axis=1)

    def merge(x: object) -> object:
        return tf.concat(tf.unstack(x, HEADS, axis=1), axis=-1)

    class Block(keras.layers.Layer):
        def __init__(self) -> None:
            super().__init__()
            self.ln1, self.ln2 = keras.layers.LayerNormalization(epsilon=1e-5), keras.layers.LayerNormalization(epsilon=1e-5)
            self.q, self.k, self.v, self.o = (keras.layers.Dense(WIDTH) for _ in range(4))
            self.up, self.down = keras.layers.Dense(2 * WIDTH), keras.layers.Dense(WIDTH)

        def call(self, x: object) -> object:
            h = self.ln1(x)
            scores = tf.matmul(heads(self.q(h)), heads(self.k(h)), transpose_b=True) / np.float32(np.sqrt(WIDTH // HEADS))
            x = x + self.o(merge(tf.matmul(tf.nn.softmax(scores, axis=-1), heads(self.v(h)))))
            return x + self.down(tf.nn.relu(self.up(self.ln2(x))))

    frames = keras.Input((None, WIDTH), name="frames")
    out = keras.layers.Identity(name="out")(Block()(frames))
    model = keras.Model(frames, out)
    rng = np.random.default_rng(2)
    for weight in model.weights:  # layer norms' gamma and beta away from 1 and 0, so a wrong one shows
        centre = 1.0 if "gamma" in weight.path else 0.0
        weight.assign(rng.normal(centre, 0.3, weight.shape).astype(np.float32))
    return model


def test_rewritten_graph_is_smaller_and_computes_the_same_at_other_shapes(tmp_path: Path) -> None:
    model = attention_block()
    spec = [tf.TensorSpec([None, None, WIDTH], tf.float32, name="frames")]
    sample = {"frames": np.random.default_rng(0).normal(size=(2, 5, WIDTH)).astype(np.float32)}
    plain = export_keras(model, spec, tmp_path / "plain.onnx", sample, atol=1e-3)
    simple = export_keras(model, spec, tmp_path / "simple.onnx", sample, atol=1e-3, simplify=True)

    assert plain.simplified is None
    assert simple.simplified["tensordots"] == 6
    assert simple.simplified["layer_norms"] == 2
    assert simple.simplified["heads"] == 4  # q, k, v split; one merge
    ops = collections.Counter(n.op_type for n in onnx.load(str(simple.path)).graph.node)
    assert ops["LayerNormalization"] == 2 and ops["GlobalAveragePool"] == 0 and ops["Split"] == 0
    assert simple.simplified["nodes_after"] < simple.simplified["nodes_before"] / 2

    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (plain.path, simple.path)]
    rng = np.random.default_rng(1)
    for batch, time in ((1, 1), (3, 9), (4, 2)):
        x = rng.normal(size=(batch, time, WIDTH)).astype(np.float32)
        want = model(x, training=False).numpy()
        for session in sessions:
            (got,) = session.run(None, {"frames": x})
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_a_graph_without_the_patterns_is_left_as_it_is(tmp_path: Path) -> None:
    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape=(6,), name="x")
    model = keras.Model(inputs, keras.layers.Dense(3, name="y")(keras.layers.Dense(4, activation="relu")(inputs)))
    report = export_keras(model, [tf.TensorSpec([None, 6], tf.float32, name="x")], tmp_path / "m.onnx",
                          {"x": np.ones((2, 6), np.float32)}, simplify=True)
    assert report.simplified["tensordots"] == report.simplified["layer_norms"] == report.simplified["heads"] == 0
    assert report.simplified["nodes_after"] == report.simplified["nodes_before"]
