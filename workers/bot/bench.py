"""``workers bench bot``: chat traffic, the TensorFlow baselines' per-message step, model-only timing."""

from __future__ import annotations

import csv
import json
import time

import numpy as np

from models import ARTIFACTS
from workers.devtools.bench.workloads import BenchWorkload, Step, time_session
from workers.settings import OnnxSettings


def bot_texts() -> list[str]:
    """Banking77 test queries when the data set is beside the checkout, else the demo's chat lines."""
    from models.bot import DEFAULT_DATA

    path = DEFAULT_DATA / "banking77" / "test.csv"
    if path.exists():
        with path.open(newline="", encoding="utf-8") as f:
            return [row[0] for row in list(csv.reader(f))[1:]]
    from workers.bot.demo import CHATS

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
    from workers.bot.model import BotManifest
    from workers.bot.policy import Conversation, DialoguePolicy
    from workers.runtime.text import WordPieceTokenizer

    model_dir = ARTIFACTS / "bot"
    manifest = BotManifest.load(model_dir)
    model = keras_from_onnx(model_dir)
    tokenizer = WordPieceTokenizer.from_file(model_dir / "vocab.txt", manifest.policy["max_tokens"])
    policy = DialoguePolicy.from_manifest(manifest.labels, manifest.policy)
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
        batches.append([intents.tokenizer.pad([chunk[i] for i in group]) for group in length_groups(chunk, intents.length_group)])
    cursor = iter(range(10**9))

    def run() -> None:
        for ids, mask in batches[next(cursor) % len(batches)]:
            intents.onnx.run({"input_ids": ids, "attention_mask": mask})

    return time_session(run, batch, seconds)


BENCH = BenchWorkload("bot", bot_messages, bot_tf_step, bot_model_only)
