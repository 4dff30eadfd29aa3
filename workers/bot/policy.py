"""What the bot says: the intent's reply, a fallback when unsure, a human when asked or stuck.

Rule (Rasa/Dialogflow style, thresholds calibrated at training time and stored in the manifest):
fall back when the model says ``out_of_scope``, when the top probability is under ``threshold`` or
when the top two are closer than ``margin``; hand off after ``max_fallbacks`` fallbacks in a row, or
at once when the customer asks for a person. Once handed off, the bot stays out of the way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

OUT_OF_SCOPE = "out_of_scope"
_TALK = re.compile(
    r"\b(talk|speak|chat)\s+(to|with)\s+(a |an |the |some |your |real |live |actual )*"
    r"(human|person|agent|representative|operator|someone|somebody|manager|advisor|adviser|staff)\b",
    re.IGNORECASE,
)
_CONNECT = re.compile(r"\b(connect|transfer|put|pass)\s+me\s+(to|with|through)\b", re.IGNORECASE)
_STRONG = re.compile(r"\b(human|real person|live agent|representative|operator)\b", re.IGNORECASE)
_ASKING = re.compile(r"\b(let me|can i|could i|may i|i want|i wanna|i'd like|i would like|i need|please|get me)\b",
                     re.IGNORECASE)
_SHORT = re.compile(r"^\W*((a|an|the|real|live|speak to|talk to)\s+)*(human|agent|representative|operator|person)\b",
                    re.IGNORECASE)
_QUESTION = re.compile(r"^\W*(do|does|did|is|are|will|would|why|how|what|when|where|who)\b", re.IGNORECASE)


def asks_for_a_person(text: str) -> bool:
    """'Let me talk to a human' or 'agent please' -- not 'do I need to speak to someone to close it?'."""
    if len(text.split()) <= 5 and _SHORT.search(text):
        return True
    if _QUESTION.search(text):
        return False
    return bool(_TALK.search(text) or _CONNECT.search(text) or (_STRONG.search(text) and _ASKING.search(text)))


def load_replies() -> dict[str, str]:
    return json.loads(resources.files("workers.bot").joinpath("replies.json").read_text(encoding="utf-8"))


@dataclass
class Conversation:
    """Per-conversation state the worker keeps (keyed by conversation id, with idle expiry)."""

    turns: int = 0
    fallbacks_in_a_row: int = 0
    last_intent: str | None = None
    handed_off: bool = False


class ConversationCodec:
    """A conversation's state in the changelog: four fields of JSON."""

    def encode(self, state: Conversation) -> bytes:
        return json.dumps([state.turns, state.fallbacks_in_a_row, state.last_intent, state.handed_off],
                          separators=(",", ":")).encode()

    def decode(self, data: bytes) -> Conversation:
        turns, fallbacks, last_intent, handed_off = json.loads(data)
        return Conversation(int(turns), int(fallbacks), last_intent, bool(handed_off))


@dataclass(frozen=True)
class Decision:
    intent: str
    confidence: float
    reply: str
    handoff: bool
    fallback: bool
    reason: str  # answered | low_confidence | ambiguous | out_of_scope | human_requested | repeated_fallback | already_handed_off


class DialoguePolicy:
    def __init__(self, labels: list[str], replies: dict[str, str], threshold: float, margin: float,
                 max_fallbacks: int) -> None:
        missing = [label for label in labels if label != OUT_OF_SCOPE and label not in replies]
        if missing:
            raise ValueError(f"no reply for intents {missing}")
        self.labels = labels
        self.replies = replies
        self.threshold = threshold
        self.margin = margin
        self.max_fallbacks = max_fallbacks

    @classmethod
    def from_manifest(cls, labels: list[str], policy: dict[str, Any]) -> DialoguePolicy:
        return cls(labels, load_replies(), float(policy["threshold"]), float(policy["margin"]),
                   int(policy.get("max_fallbacks", 2)))

    def decide(self, probabilities: np.ndarray, text: str, conversation: Conversation) -> Decision:
        """Choose the answer and update ``conversation`` (one turn)."""
        conversation.turns += 1
        order = np.argsort(probabilities)[::-1]
        best, second = int(order[0]), int(order[1])
        intent, confidence = self.labels[best], float(probabilities[best])
        if conversation.handed_off:
            return self._handoff(intent, confidence, "already_handed_off", self.replies["_handoff"], conversation)
        if asks_for_a_person(text):
            return self._handoff(intent, confidence, "human_requested", self.replies["_handoff_requested"], conversation)
        if intent == OUT_OF_SCOPE:
            reason = "out_of_scope"
        elif confidence < self.threshold:
            reason = "low_confidence"
        elif confidence - float(probabilities[second]) < self.margin:
            reason = "ambiguous"
        else:
            conversation.fallbacks_in_a_row = 0
            conversation.last_intent = intent
            return Decision(intent, confidence, self.replies[intent], False, False, "answered")
        conversation.fallbacks_in_a_row += 1
        if conversation.fallbacks_in_a_row >= self.max_fallbacks:
            return self._handoff(intent, confidence, "repeated_fallback", self.replies["_handoff"], conversation)
        return Decision(intent, confidence, self.replies["_fallback"], False, True, reason)

    @staticmethod
    def _handoff(intent: str, confidence: float, reason: str, reply: str, conversation: Conversation) -> Decision:
        conversation.handed_off = True
        return Decision(intent, confidence, reply, True, reason == "repeated_fallback", reason)
