"""Chat worker: ``chat.messages`` -> ``chat.replies``.

Message (key = conversation_id)::

    {"conversation_id": "c-42", "message_id": "m-7", "text": "my card hasn't arrived", "ts": 1795340000.0}

Reply::

    {"conversation_id": "c-42", "message_id": "m-7", "intent": "card_arrival", "confidence": 0.97,
     "reply": "...", "handoff": false, "fallback": false, "reason": "answered", "turn": 1,
     "model_version": "...", "latency": {...}}

Conversations are answered in order: the engine keeps per-key order, and the policy updates each
conversation's state in batch order. State expires after ``WORKERS_STATE_TTL_S`` idle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workers.bot.model import IntentModel
from workers.bot.policy import Conversation, ConversationCodec
from workers.bot.settings import BotSettings
from workers.toolkit.codec import check_schema_version, decode_json_object, encode_json, require_id, require_string, require_timestamp
from workers.engine.handler import InvalidMessage, Outcome, Pending, Result, StatefulHandler
from workers.settings import Settings
from workers.transport.records import Record

MAX_TEXT_CHARS = 2000


@dataclass(frozen=True, slots=True)
class ChatMessage:
    conversation_id: str
    message_id: str | int
    text: str
    ts: float


def parse_chat_message(record: Record) -> ChatMessage:
    payload = decode_json_object(record, max_bytes=64 * 1024)
    check_schema_version(payload)
    conversation_id = require_string(payload, "conversation_id", 256)
    message_id = require_id(payload, "message_id")
    text = require_string(payload, "text", MAX_TEXT_CHARS)
    ts = require_timestamp(payload)
    if record.key is not None and record.key != conversation_id.encode():
        raise InvalidMessage("key_mismatch", "the record key must be the conversation_id (it keeps a conversation in order)")
    return ChatMessage(conversation_id, message_id, text.strip(), ts)


class BotHandler(StatefulHandler[ChatMessage]):
    name = "bot"
    input_topic = "chat.messages"
    output_topic = "chat.replies"
    state_codec = ConversationCodec()

    def __init__(self, model_dir: str | Path, settings: Settings) -> None:
        self.intents = IntentModel(model_dir, settings.onnx, settings.of(BotSettings).length_group)
        self.model = self.intents.onnx
        self.conversations = self.init_state(Conversation, settings.engine.state_ttl_s, settings.engine.max_keys)

    def warmup(self, runs: int) -> None:
        self.intents.warmup(runs)

    def decode(self, record: Record) -> tuple[str, ChatMessage]:
        message = parse_chat_message(record)
        return message.conversation_id, message

    def process(self, batch: list[Pending[ChatMessage]]) -> list[Outcome]:
        probabilities = self.intents.probabilities([item.value.text for item in batch])
        inference_s = self.model.last_run_s
        outcomes: list[Outcome] = []
        for item, probs in zip(batch, probabilities, strict=True):
            message = item.value
            conversation = self.conversations.get(message.conversation_id, item.record.partition)
            decision = self.intents.policy.decide(probs, message.text, conversation)
            reply = {
                "conversation_id": message.conversation_id,
                "message_id": message.message_id,
                "intent": decision.intent,
                "confidence": round(decision.confidence, 4),
                "reply": decision.reply,
                "handoff": decision.handoff,
                "fallback": decision.fallback,
                "reason": decision.reason,
                "turn": conversation.turns,
                "model_version": self.model.version,
                "latency": item.latency_fields(inference_s),
            }
            outcomes.append([Result(encode_json(reply), message.conversation_id.encode())])
        self.report_state()
        return outcomes
