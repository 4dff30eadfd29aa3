"""``workers bench clicks``: session traffic, the TensorFlow baselines' per-message step, model-only timing."""

from __future__ import annotations

import json
import time
from itertools import cycle
from typing import Any

import numpy as np

from models import ARTIFACTS
from workers.devtools.bench.workloads import BenchWorkload, Step, time_session
from workers.settings import OnnxSettings


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
    from workers.clicks.model import SessionManifest, top_items

    model_dir = ARTIFACTS / "clicks"
    manifest = SessionManifest.load(model_dir)
    model = keras_step_from_onnx(model_dir)
    items: list[str] = json.loads((model_dir / "items.json").read_text())
    index = {item: i + 1 for i, item in enumerate(items)}
    sessions: dict[str, tuple[np.ndarray, int]] = {}
    zero = np.zeros((1, manifest.session["state_size"]), np.float32)
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
    """ONNX Runtime alone, loaded as the worker loads it, on a batch of ``batch`` session steps; and beside it
    (``scoring_throughput``) the served scoring around that call: the sessions' state, the hybrid's blend of the
    GRU with its count signals and the top-20, on the bench's traffic in batches of distinct sessions, as the
    worker batches them. Model-only counts neither the blend nor the top-k; the second figure says what they
    cost before any decoding, Kafka or bookkeeping."""
    from workers.clicks.events import Event
    from workers.clicks.handler import parse_click
    from workers.clicks.model import SessionModel
    from workers.engine.batcher import MicroBatcher
    from workers.engine.handler import Pending
    from workers.transport.records import Record

    sessions = SessionModel(ARTIFACTS / "clicks", onnx)
    rng = np.random.default_rng(0)
    feeds = {"item": rng.integers(1, len(sessions.items) + 1, batch).astype(np.int64),
             "event": rng.integers(1, 5, batch).astype(np.int64),
             "state": rng.normal(0, 0.3, (batch, sessions.state_size)).astype(np.float32)}
    figures = time_session(lambda: sessions.onnx.run(feeds), batch, seconds)

    batcher: MicroBatcher[Pending[Event]] = MicroBatcher(batch, 0.0, one_per_key=True)  # as the worker batches
    for offset, (key, value) in enumerate(click_messages(20 * batch * 30, 1)):
        record = Record("bench", 0, offset, key, value)
        event = parse_click(record)[0]
        batcher.add(Pending(record, event.session_id, event))
    taken = []
    while len(batcher):
        taken.append([item.value for item in batcher.take()])
    served = cycle([b for b in taken if len(b) == batch] or taken)  # full batches: the figure is per ``batch``
    states: dict[str, Any] = {}

    def score() -> None:
        events = next(served)
        sessions.step([states.setdefault(e.session_id, sessions.new_state()) for e in events], events, 20)

    scoring = time_session(score, batch, seconds)
    return figures | {"scoring_throughput": scoring["throughput"], "scoring_median_batch_s": scoring["median_batch_s"]}


BENCH = BenchWorkload("clicks", click_messages, clicks_tf_step, clicks_model_only)
