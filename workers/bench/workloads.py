"""What each benchmarked workload sends, and the TensorFlow per-message step its baselines run.

The baselines use the same trained model as the worker, rebuilt in TensorFlow from the committed
ONNX weights (``models.bot.keras_from_onnx``, ``models.clicks.keras_step_from_onnx``, both checked
for parity), and do the same per-message work: decode JSON, tokenise or look up state, run the
model, post-process (policy reply / top-k) and encode the JSON result.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from models import ARTIFACTS
from workers.settings import OnnxSettings

Step = Callable[[bytes | None, bytes, dict[str, bytes]], bytes]
"""(record key, record value, record headers) -> result value: one message through a baseline."""

MODES = ("predict", "tf_function")
"""Baseline (a): ``model.predict(x)`` per message; baseline (b): the model in ``tf.function``, per message."""


@dataclass(frozen=True)
class Workload:
    name: str
    messages: Callable[[int, int], list[tuple[bytes, bytes]]]  # (n, seed) -> [(key, value)]
    tf_step: Callable[[str], Step]  # mode -> per-message function (imports TensorFlow)
    model_only: Callable[[int, float, OnnxSettings], dict[str, float]]  # (batch, seconds, worker's ORT settings)


def _time_session(run: Callable[[], Any], batch: int, seconds: float) -> dict[str, float]:
    """Calls ``run`` (one batch) for about ``seconds``: median batch time and messages per second."""
    run()
    times = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds or len(times) < 5:
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    median = float(np.median(times))
    return {"batch_size": batch, "median_batch_s": round(median, 6), "throughput": round(batch / median, 1)}


# --- bot ---------------------------------------------------------------------------------------------

def bot_texts() -> list[str]:
    """Banking77 test queries when the data set is beside the checkout, else the demo's chat lines."""
    from models.bot import DEFAULT_DATA

    path = DEFAULT_DATA / "banking77" / "test.csv"
    if path.exists():
        with path.open(newline="", encoding="utf-8") as f:
            return [row[0] for row in list(csv.reader(f))[1:]]
    from workers.demo import CHATS

    return [line for chat in CHATS for line in chat]


def bot_messages(n: int, seed: int) -> list[tuple[bytes, bytes]]:
    texts = bot_texts()
    order = np.random.default_rng(seed).permutation(len(texts))
    out = []
    for i in range(n):
        conversation = f"bench-{seed}-{i % 500}"
        body = {"conversation_id": conversation, "message_id": i, "text": texts[order[i % len(texts)]], "ts": time.time()}
        out.append((conversation.encode(), json.dumps(body).encode()))
    return out


def bot_tf_step(mode: str) -> Step:
    import tensorflow as tf

    from models.bot import keras_from_onnx
    from workers.bot.policy import Conversation, DialoguePolicy
    from workers.runtime.text import WordPieceTokenizer

    model_dir = ARTIFACTS / "bot"
    manifest = json.loads((model_dir / "manifest.json").read_text())
    model = keras_from_onnx(model_dir)
    tokenizer = WordPieceTokenizer.from_file(model_dir / "vocab.txt", manifest["policy"]["max_tokens"])
    policy = DialoguePolicy.from_manifest(manifest["labels"], manifest["policy"])
    conversations: dict[str, Conversation] = {}
    if mode == "predict":
        def infer(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            return model.predict([ids, mask], verbose=0)
    else:
        spec = [tf.TensorSpec([None, None], tf.int64), tf.TensorSpec([None, None], tf.int64)]
        compiled = tf.function(lambda ids, mask: model([ids, mask], training=False), input_signature=spec)

        def infer(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
            return compiled(ids, mask).numpy()

    def step(_key: bytes | None, value: bytes, _headers: dict[str, bytes]) -> bytes:
        message = json.loads(value)
        ids, mask = tokenizer.encode_batch([message["text"]])
        probabilities = infer(ids, mask)[0]
        conversation = conversations.setdefault(message["conversation_id"], Conversation())
        decision = policy.decide(probabilities, message["text"], conversation)
        return json.dumps({"conversation_id": message["conversation_id"], "message_id": message["message_id"],
                           "intent": decision.intent, "confidence": round(decision.confidence, 4),
                           "reply": decision.reply, "handoff": decision.handoff, "fallback": decision.fallback,
                           "reason": decision.reason, "turn": conversation.turns}).encode()

    step(None, bot_messages(1, 0)[0][1], {})  # trace / warm up before the first timed message
    return step


def bot_model_only(batch: int, seconds: float, onnx: OnnxSettings) -> dict[str, float]:
    """ONNX Runtime alone, loaded as the worker loads it, on what the worker gives it for a batch of
    ``batch`` messages: the texts pre-tokenised, in the worker's length-sorted groups."""
    from workers.bot.model import IntentModel, length_groups

    intents = IntentModel(ARTIFACTS / "bot", onnx)
    encoded = [intents.tokenizer.encode(t) for t in bot_texts()]
    batches = []
    for start in range(0, min(len(encoded), 32 * batch) - batch + 1, batch):
        chunk = encoded[start : start + batch]
        batches.append([intents.tokenizer.pad([chunk[i] for i in group]) for group in length_groups(chunk)])
    cursor = iter(range(10**9))

    def run() -> None:
        for ids, mask in batches[next(cursor) % len(batches)]:
            intents.onnx.run({"input_ids": ids, "attention_mask": mask})

    return _time_session(run, batch, seconds)


# --- clicks ------------------------------------------------------------------------------------------

def click_messages(n: int, seed: int) -> list[tuple[bytes, bytes]]:
    from workers.clicks.events import to_json
    from workers.clicks.synthetic import generate

    events = generate(max(50, n // 6), seed=seed, days=0.02)  # interleaved live sessions, in time order
    while len(events) < n:
        events += generate(max(50, n // 6), seed=seed + len(events), days=0.02)
    out = []
    for event in events[:n]:
        body = to_json(event) | {"session_id": f"{event.session_id}-{seed}", "ts": time.time()}
        out.append((body["session_id"].encode(), json.dumps(body).encode()))
    return out


def clicks_tf_step(mode: str) -> Step:
    import tensorflow as tf

    from models.clicks import keras_step_from_onnx
    from workers.clicks.events import event_index
    from workers.clicks.model import top_items

    model_dir = ARTIFACTS / "clicks"
    manifest = json.loads((model_dir / "manifest.json").read_text())
    model = keras_step_from_onnx(model_dir)
    items: list[str] = json.loads((model_dir / "items.json").read_text())
    index = {item: i + 1 for i, item in enumerate(items)}
    sessions: dict[str, tuple[np.ndarray, int]] = {}
    zero = np.zeros((1, manifest["session"]["state_size"]), np.float32)
    if mode == "predict":
        def infer(item: np.ndarray, event: np.ndarray, state: np.ndarray) -> dict[str, np.ndarray]:
            return model.predict([item, event, state], verbose=0)
    else:
        spec = [tf.TensorSpec([1], tf.int64), tf.TensorSpec([1], tf.int64), tf.TensorSpec(zero.shape, tf.float32)]
        compiled = tf.function(lambda item, event, state: model([item, event, state], training=False),
                               input_signature=spec)

        def infer(item: np.ndarray, event: np.ndarray, state: np.ndarray) -> dict[str, np.ndarray]:
            return {name: value.numpy() for name, value in compiled(item, event, state).items()}

    def step(_key: bytes | None, value: bytes, _headers: dict[str, bytes]) -> bytes:
        event = json.loads(value)
        state, position = sessions.get(event["session_id"], (zero, -1))
        item = index.get(str(event["item_id"]), 0)
        out = infer(np.array([item], np.int64), np.array([event_index(event.get("event_type", "click"))], np.int64), state)
        sessions[event["session_id"]] = (out["next_state"], position + 1)
        best, scores = top_items(out["scores"], int(event.get("k", 20)))
        return json.dumps({"session_id": event["session_id"], "item_id": event["item_id"], "position": position + 1,
                           "next_items": [{"item_id": items[i - 1], "score": round(float(score), 6)}
                                          for i, score in zip(best[0], scores[0], strict=True)],
                           "purchase_probability": round(float(out["purchase"][0, 0]), 6),
                           "unknown_item": item == 0}).encode()

    step(None, click_messages(1, 0)[0][1], {})
    return step


def clicks_model_only(batch: int, seconds: float, onnx: OnnxSettings) -> dict[str, float]:
    """ONNX Runtime alone, loaded as the worker loads it, on a batch of ``batch`` session steps."""
    from workers.clicks.model import SessionModel

    sessions = SessionModel(ARTIFACTS / "clicks", onnx)
    rng = np.random.default_rng(0)
    feeds = {"item": rng.integers(1, len(sessions.items) + 1, batch).astype(np.int64),
             "event": rng.integers(1, 5, batch).astype(np.int64),
             "state": rng.normal(0, 0.3, (batch, sessions.state_size)).astype(np.float32)}
    return _time_session(lambda: sessions.onnx.run(feeds), batch, seconds)


# --- asr ---------------------------------------------------------------------------------------------

def asr_tf_step(mode: str) -> Step:
    """Per chunk: parse the asr/1 headers, PCM16 -> resampler -> log-mel (the worker's front end), the
    Keras streaming model on this one stream with its state, greedy CTC, a JSON partial (a final, greedy,
    on ``end``). No batching across streams, no endpointing, no beam search: less work than the worker."""
    import tensorflow as tf

    from models.asr import keras_from_artifacts
    from workers.asr.audio import FeatureStream, Resampler, pcm16_to_float
    from workers.asr.text import ALPHABET, BLANK

    model_dir = ARTIFACTS / "asr"
    version = json.loads((model_dir / "manifest.json").read_text())["version"]
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
    timing = _time_session(lambda: model.run(memories, frames), batch, seconds)
    return timing | {"throughput": round(batch * chunk_s / timing["median_batch_s"], 1), "unit": "RTFX"}


WORKLOADS = {
    "bot": Workload("bot", bot_messages, bot_tf_step, bot_model_only),
    "clicks": Workload("clicks", click_messages, clicks_tf_step, clicks_model_only),
}
BASELINE_STEPS: dict[str, Callable[[str], Step]] = {**{name: w.tf_step for name, w in WORKLOADS.items()},
                                                     "asr": asr_tf_step}
"""Workload name -> its baselines' per-message step (``asr`` is benchmarked by :mod:`workers.bench.asr`)."""
