"""Generated hostile messages for each workload: every one must be refused with a reason, none may crash
a worker. Each generator cycles through its kinds with random content, so 1,000 of them cover each
kind many times over."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

Bad = tuple[bytes, bytes | None]  # (value, key)


def _common(rng: random.Random, valid: dict) -> list[Bad]:
    """Kinds that break any JSON worker."""
    text = json.dumps(valid)
    return [
        (bytes(rng.randrange(128, 256) for _ in range(rng.randrange(1, 40))), b"k"),  # invalid UTF-8
        (text[: rng.randrange(1, len(text) - 1)].encode(), b"k"),  # truncated JSON
        (b"{" + b'"a":' * rng.randrange(1, 50), b"k"),  # garbage
        (json.dumps(rng.choice([[1, 2], "str", 42, None, True])).encode(), b"k"),  # not an object
        (b"", b"k"),  # empty value
        (text.replace("}", ', "ts": NaN}').encode(), b"k"),  # NaN is not JSON
        (json.dumps(valid | {"schema_version": rng.randrange(2, 10**6)}).encode(), b"k"),
    ]


def _drop(rng: random.Random, valid: dict, required: list[str]) -> dict:
    dropped = rng.choice(required)
    return {k: v for k, v in valid.items() if k != dropped}


def _wrong_type(rng: random.Random) -> object:
    """A value of the wrong JSON type for any string, id or number field."""
    return rng.choice([[], {}, True, None, [1, "a"], {"nested": 1}])


def tensor_bad(rng: random.Random, i: int) -> Bad:
    valid = {"id": f"bad{i}", "inputs": {"pixels": [0.0] * 64}}
    kinds = _common(rng, valid) + [
        (json.dumps({"id": f"bad{i}"}).encode(), b"k"),  # missing inputs
        (json.dumps(valid | {"inputs": {"pixels": [0.0] * rng.choice([1, 63, 65, 4096])}}).encode(), b"k"),  # shape
        (json.dumps(valid | {"inputs": {"nope": [0.0] * 64}}).encode(), b"k"),  # unknown input
        (json.dumps(valid | {"inputs": {"pixels": [1e39] * 64}}).encode(), b"k"),  # overflows float32 -> inf
        (json.dumps(valid | {"inputs": {"pixels": ["x"] * 64}}).encode(), b"k"),  # wrong element type
        (json.dumps(valid | {"inputs": _wrong_type(rng)}).encode(), b"k"),
    ]
    return kinds[i % len(kinds)]


def bot_bad(rng: random.Random, i: int) -> Bad:
    valid = {"conversation_id": f"c{i}", "message_id": i, "text": "where is my card?", "ts": 1795340000}
    key = f"c{i}".encode()
    kinds = [(v, key) for v, _ in _common(rng, valid)] + [
        (json.dumps(_drop(rng, valid, ["conversation_id", "message_id", "text", "ts"])).encode(), key),
        (json.dumps(valid | {"text": "x" * rng.randrange(2001, 60000)}).encode(), key),  # too long
        (json.dumps(valid | {"text": "a" * 70000}).encode(), key),  # over the 64 KiB message limit
        (json.dumps(valid | {"text": " " * rng.randrange(0, 5)}).encode(), key),  # empty
        (json.dumps(valid | {rng.choice(["text", "conversation_id", "message_id", "ts"]): _wrong_type(rng)}).encode(), key),
        (json.dumps(valid | {"ts": rng.choice([-1, 1e15, 10**20])}).encode(), key),  # absurd time
        (json.dumps(valid).encode(), b"someone-else"),  # key is not the conversation
    ]
    return kinds[i % len(kinds)]


def clicks_bad(rng: random.Random, i: int) -> Bad:
    valid = {"session_id": f"s{i}", "item_id": "i1", "event_type": "view", "ts": 1795340000}
    key = f"s{i}".encode()
    kinds = [(v, key) for v, _ in _common(rng, valid)] + [
        (json.dumps(_drop(rng, valid, ["session_id", "item_id", "ts"])).encode(), key),
        (json.dumps(valid | {"event_type": rng.choice(["refund", "", "VIEW ", "teleport"])}).encode(), key),
        (json.dumps(valid | {"k": rng.choice([0, -3, 101, 10**9, "20"])}).encode(), key),
        (json.dumps(valid | {rng.choice(["session_id", "item_id", "ts"]): _wrong_type(rng)}).encode(), key),
        (json.dumps(valid | {"item_id": "x" * 300}).encode(), key),
        (json.dumps(valid | {"pad": "x" * 20000}).encode(), key),  # over the 16 KiB limit
        (json.dumps(valid).encode(), b"another-session"),
    ]
    return kinds[i % len(kinds)]


BAD: dict[str, Callable[[random.Random, int], Bad]] = {"tensor": tensor_bad, "bot": bot_bad, "clicks": clicks_bad}
