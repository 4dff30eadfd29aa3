"""``workers demo`` traffic of the chat bot: scripted conversations."""

from __future__ import annotations

import json
import time
from typing import Any

from workers.devtools.traffic import MALFORMED_EVERY, DemoTraffic
from workers.transport.records import OutgoingRecord

# Scripted chats: banking questions, small talk the bot should not answer, a customer asking for a person.
CHATS = [
    ["Hi, my new card still hasn't arrived", "how do I activate it when it comes?"],
    ["I was charged twice for the same coffee", "ok thanks, and how long does a refund take?"],
    ["what's the weather like in Lisbon tomorrow?", "recommend a good pasta recipe"],
    ["my card got swallowed by an ATM", "please let me talk to a human"],
    ["which currencies can I hold?", "what is the exchange rate for euros today?"],
    ["I think someone stole my card details", "how do I freeze my card?"],
    ["why do you need to verify my identity?", "the verification keeps failing"],
    ["can I top up by bank transfer?", "is there a fee for that?"],
]


def chat_workload(rate: float) -> DemoTraffic:
    turns = [(c, t) for c in range(len(CHATS)) for t in range(len(CHATS[c]))]
    workload: DemoTraffic

    def make(i: int) -> tuple[OutgoingRecord, str | None]:
        if i % MALFORMED_EVERY == MALFORMED_EVERY - 1:
            body = {"conversation_id": "broken", "message_id": i, "ts": time.time()}  # no text
            return OutgoingRecord("chat.messages", json.dumps(body).encode(), b"broken"), None
        cycle, (chat, turn) = divmod(i, len(turns))[0], turns[i % len(turns)]
        conversation = f"chat-{chat}-{cycle}"
        message_id = f"{conversation}/{turn}"
        workload.expected[message_id] = CHATS[chat][turn]
        body = {"conversation_id": conversation, "message_id": message_id, "text": CHATS[chat][turn], "ts": time.time()}
        return OutgoingRecord("chat.messages", json.dumps(body).encode(), conversation.encode()), message_id

    def show(result: dict[str, Any], expected: dict[str, str]) -> tuple[str, bool]:
        said = expected.get(str(result["message_id"]), "?")
        action = "HANDOFF" if result["handoff"] else ("fallback" if result["fallback"] else result["intent"])
        return (f"{result['conversation_id']:<11} \"{said[:38]}\" -> {action} ({result['confidence']:.2f}): "
                f"{result['reply'][:60]}..."), True

    workload = DemoTraffic("bot", "customer-service chat bot", "chat.messages", "chat.replies", make, show)
    return workload
