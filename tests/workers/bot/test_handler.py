import json

import pytest

from models import ARTIFACTS
from workers.bot.handler import BotHandler, parse_chat_message
from workers.engine.handler import InvalidMessage, Pending
from workers.settings import load_settings
from workers.transport.records import Record

GOOD = {"conversation_id": "c1", "message_id": "m1", "text": "my card hasn't arrived yet", "ts": 1795340000.5}


def record(payload: object, key: bytes | None = b"c1") -> Record:
    value = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Record("chat.messages", 0, 3, key, value)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\xff\xfe", "invalid_utf8"),
        (b"{nope", "invalid_json"),
        ({k: v for k, v in GOOD.items() if k != "text"}, "missing_field"),
        ({k: v for k, v in GOOD.items() if k != "ts"}, "missing_field"),
        (GOOD | {"text": "   "}, "empty_field"),
        (GOOD | {"text": "x" * 2001}, "field_too_long"),
        (GOOD | {"text": 42}, "wrong_type"),
        (GOOD | {"message_id": True}, "wrong_type"),
        (GOOD | {"ts": "yesterday"}, "wrong_type"),
        (GOOD | {"ts": -5}, "out_of_range"),
        (GOOD | {"schema_version": 9}, "unsupported_schema"),
        (b'{"a": ' + b"[" * 100 + b"]" * 100 + b"}" + b" " * 70000, "too_large"),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(payload: object, code: str) -> None:
    with pytest.raises(InvalidMessage) as caught:
        parse_chat_message(record(payload))
    assert caught.value.code == code


def test_the_key_must_be_the_conversation() -> None:
    with pytest.raises(InvalidMessage) as caught:
        parse_chat_message(record(GOOD, key=b"someone-else"))
    assert caught.value.code == "key_mismatch"
    assert parse_chat_message(record(GOOD, key=None)).conversation_id == "c1"
    assert parse_chat_message(record(GOOD | {"ts": 1795340000500})).ts == pytest.approx(1795340000.5)


@pytest.mark.skipif(not (ARTIFACTS / "bot" / "model.onnx").exists(), reason="bot model not built")
def test_the_real_model_answers_banking_questions_and_keeps_state() -> None:
    handler = BotHandler(ARTIFACTS / "bot", load_settings())
    texts = ["my card hasn't arrived yet", "how do I activate my new card?", "what is the weather in Paris tomorrow",
             "give me a recipe for lasagna"]
    items = [Pending(record(GOOD | {"text": t, "message_id": f"m{i}"}), "c1", parse_chat_message(record(GOOD | {"text": t})))
             for i, t in enumerate(texts)]
    replies = [json.loads(o[0].value) for o in handler.process(items)]
    assert [r["intent"] for r in replies[:2]] == ["card_arrival", "activate_my_card"]
    assert not replies[0]["handoff"] and replies[0]["reason"] == "answered"
    assert replies[2]["fallback"] and not replies[2]["handoff"]
    assert replies[3]["handoff"] and replies[3]["reason"] == "repeated_fallback"
    assert [r["turn"] for r in replies] == [1, 2, 3, 4]
    assert handler.conversations.drop_partitions({0}) == 1


@pytest.mark.skipif(not (ARTIFACTS / "bot" / "model.onnx").exists(), reason="bot model not built")
def test_a_new_model_version_keeps_the_conversations() -> None:
    old = BotHandler(ARTIFACTS / "bot", load_settings())
    old.process([Pending(record(GOOD), "c1", parse_chat_message(record(GOOD)))])
    new = BotHandler(ARTIFACTS / "bot", load_settings())
    new.adopt(old)
    assert "c1" in new.conversations and new.conversations.get("c1", 0).turns == 1
