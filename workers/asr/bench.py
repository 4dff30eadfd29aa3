"""``workers bench asr``'s baselines: the TensorFlow per-chunk step and model-only timing (the stream-count
climb itself is :mod:`workers.asr.bench_streams`)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from models import ARTIFACTS
from workers.devtools.bench.workloads import BenchWorkload, Step, time_session
from workers.runtime.artifact import Manifest
from workers.settings import OnnxSettings


def asr_tf_step(mode: str) -> Step:
    """Per chunk: parse the asr/1 headers, PCM16 -> resampler -> log-mel (the worker's front end), the
    Keras streaming model on this one stream with its state, greedy CTC, a JSON partial (a final, greedy,
    on ``end``). No batching across streams, no endpointing, no beam search: less work than the worker."""
    import tensorflow as tf

    from models.asr import keras_from_artifacts
    from workers.asr.audio import FeatureStream, Resampler, pcm16_to_float
    from workers.asr.text import ALPHABET, BLANK

    model_dir = ARTIFACTS / "asr"
    version = Manifest.load(model_dir).version
    model = keras_from_artifacts(model_dir)
    state_names = [t.name for t in model.inputs if t.name != "features"]
    shapes = {t.name: tuple(t.shape[1:]) for t in model.inputs}
    streams: dict[str, dict[str, Any]] = {}
    if mode == "predict":
        def infer(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return model.predict(feeds, verbose=0)
    else:
        spec = {name: tf.TensorSpec([None, *shape], tf.float32) for name, shape in shapes.items()}
        compiled = tf.function(lambda feeds: model(feeds, training=False), input_signature=[spec])

        def infer(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {name: value.numpy() for name, value in compiled(feeds).items()}

    def step(key: bytes | None, value: bytes, headers: dict[str, bytes]) -> bytes:
        stream_id, seq, end = (key or b"").decode(), int(headers["seq"]), headers.get("end") == b"1"
        if seq == 0 or stream_id not in streams:
            streams[stream_id] = {"resampler": Resampler(int(headers["sample_rate"])), "features": FeatureStream(),
                                  "pending": np.zeros((0, shapes["features"][-1]), np.float32), "text": [],
                                  "previous": BLANK, "memory": {n: np.zeros((1, *shapes[n]), np.float32)
                                                                for n in state_names}}
        stream = streams[stream_id]
        frames = stream["features"].push(stream["resampler"].push(pcm16_to_float(value)))
        frames = np.concatenate([stream["pending"], frames])
        usable = len(frames) - len(frames) % 2
        stream["pending"] = frames[usable:]
        if usable:
            out = infer({"features": frames[None, :usable], **stream["memory"]})
            stream["memory"] = {n: np.asarray(out[f"next_{n}"]) for n in state_names}
            for token in np.asarray(out["log_probs"])[0].argmax(-1).tolist():
                if token != stream["previous"] and token != BLANK:
                    stream["text"].append(ALPHABET[token - 1])
                stream["previous"] = token
        text = " ".join("".join(stream["text"]).split())
        if end:
            del streams[stream_id]
        return json.dumps({"stream_id": stream_id, "seq": seq, "type": "final" if end else "partial", "text": text,
                           "model_version": version}).encode()

    silence = np.zeros(2560, np.int16).tobytes()
    step(b"warm-up", silence, {"seq": b"0", "sample_rate": b"16000", "end": b"1"})
    return step


def asr_model_only(batch: int, seconds: float, onnx: OnnxSettings, chunk_s: float = 0.16) -> dict[str, float]:
    """ONNX Runtime alone, loaded as the worker loads it, on ``batch`` streams' chunks of ``chunk_s`` in one
    call; ``throughput`` is in streams kept in real time (RTFX: audio seconds per wall second)."""
    from workers.asr.audio import HOP, N_MELS, SAMPLE_RATE
    from workers.asr.recognizer import AcousticModel

    model = AcousticModel(ARTIFACTS / "asr", onnx)
    memories = [model.initial_memory() for _ in range(batch)]
    shape = (batch, int(round(chunk_s * SAMPLE_RATE / HOP)), N_MELS)
    frames = np.random.default_rng(0).normal(-8, 2, shape).astype(np.float32)
    timing = time_session(lambda: model.run(memories, frames), batch, seconds)
    return timing | {"throughput": round(batch * chunk_s / timing["median_batch_s"], 1), "unit": "RTFX"}


def chunk_messages(n: int, seed: int, chunk_s: float = 0.16) -> list[tuple[bytes, bytes]]:
    """``n`` (stream id, 16 kHz PCM16 chunk) pairs cut from the bundled samples: the records the transport
    alone is timed on (``workers bench asr`` times the worker itself with real-time streams instead)."""
    from pathlib import Path

    from workers.asr.audio import SAMPLE_RATE, float_to_pcm16, read_wav, resample

    step = int(chunk_s * SAMPLE_RATE)
    chunks = []
    for path in sorted((Path(__file__).resolve().parent / "samples").glob("*.wav")):
        audio, rate = read_wav(path)
        audio = resample(audio, rate, SAMPLE_RATE)
        chunks += [float_to_pcm16(audio[i:i + step]) for i in range(0, len(audio) - step + 1, step)]
    order = np.random.default_rng(seed).integers(0, len(chunks), n)
    return [(f"stream-{i % 32}".encode(), chunks[c]) for i, c in enumerate(order)]


BENCH = BenchWorkload("asr", chunk_messages, asr_tf_step, asr_model_only)
"""The per-chunk baselines, model-only timing and the chunks the transport alone is timed on; the worker's
traffic is real-time audio streams (bench_streams)."""
