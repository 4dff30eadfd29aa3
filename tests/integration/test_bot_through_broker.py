"""The chat bot end to end through the real broker: in-order multi-turn replies, fallback, handoff, DLQ."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import collect
from workers.client import send
from workers.transport.records import OutgoingRecord

pytestmark = pytest.mark.integration

CONVERSATIONS = {
    "alice": ["my new card still hasn't arrived", "how do I activate it once it comes?", "and can I add it to apple pay?"],
    "bob": ["what's the weather like in Lisbon tomorrow?", "recommend a good pasta recipe", "where is my card?"],
    "carol": ["I was charged twice for the same coffee", "please let me talk to a human"],
}


def message(conversation: str, turn: int, text: str) -> OutgoingRecord:
    body = {"conversation_id": conversation, "message_id": f"{conversation}-{turn}", "text": text, "ts": time.time()}
    return OutgoingRecord("", json.dumps(body).encode(), conversation.encode())


def test_multi_turn_conversations_fallback_handoff_and_dlq(broker, topics, start_worker) -> None:
    from workers.settings import KafkaSettings

    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, client="confluent")
    start_worker("bot", kafka, topics)
    turns = max(len(v) for v in CONVERSATIONS.values())
    interleaved = [message(c, t, texts[t]) for t in range(turns) for c, texts in CONVERSATIONS.items() if t < len(texts)]
    bad = [
        OutgoingRecord("", b'{"conversation_id": "dave", "message_id": 1, "ts": 1}', b"dave"),  # no text
        OutgoingRecord("", b"\xff\xfe not utf-8", b"dave"),
        OutgoingRecord("", json.dumps({"conversation_id": "dave", "message_id": 2, "text": "", "ts": 1}).encode(), b"dave"),
        OutgoingRecord("", json.dumps({"conversation_id": "erin", "message_id": 3, "text": "hi", "ts": 1}).encode(), b"x"),
    ]
    records = [OutgoingRecord(topics["input"], r.value, r.key) for r in interleaved[:4] + bad + interleaved[4:]]
    send(kafka, records)

    got = collect(kafka, [topics["output"], topics["dlq"]], lambda rs: len(rs) >= len(records))
    replies = [json.loads(r.value) for r in got if r.topic == topics["output"]]
    by_conversation = {c: [r for r in replies if r["conversation_id"] == c] for c in CONVERSATIONS}
    for conversation, texts in CONVERSATIONS.items():  # every message answered, in order, turn by turn
        assert [r["message_id"] for r in by_conversation[conversation]] == [f"{conversation}-{t}" for t in range(len(texts))]
        assert [r["turn"] for r in by_conversation[conversation]] == list(range(1, len(texts) + 1))

    alice = by_conversation["alice"]
    assert [r["intent"] for r in alice] == ["card_arrival", "activate_my_card", "apple_pay_or_google_pay"]
    assert not any(r["handoff"] or r["fallback"] for r in alice)
    bob = by_conversation["bob"]
    assert bob[0]["fallback"] and not bob[0]["handoff"]
    assert bob[1]["handoff"] and bob[1]["reason"] == "repeated_fallback"
    assert bob[2]["handoff"] and bob[2]["reason"] == "already_handed_off"
    carol = by_conversation["carol"]
    assert carol[0]["intent"] == "transaction_charged_twice" and carol[1]["reason"] == "human_requested"
    assert all(r["model_version"] and "inference_ms" in r["latency"] for r in replies)

    dead = sorted((r.header("dlq.reason") or b"").decode() for r in got if r.topic == topics["dlq"])
    assert dead == ["empty_field", "invalid_utf8", "key_mismatch", "missing_field"]
