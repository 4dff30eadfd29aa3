import numpy as np
import pytest

from workers.bot.policy import Conversation, DialoguePolicy, asks_for_a_person, load_replies

LABELS = ["card_arrival", "activate_my_card", "out_of_scope"]


@pytest.fixture
def policy() -> DialoguePolicy:
    return DialoguePolicy(LABELS, load_replies(), threshold=0.5, margin=0.1, max_fallbacks=2)


def probs(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def test_confident_in_scope_message_gets_that_intents_reply(policy: DialoguePolicy) -> None:
    conversation = Conversation()
    decision = policy.decide(probs(0.9, 0.05, 0.05), "where is my card", conversation)
    assert (decision.intent, decision.reason, decision.handoff, decision.fallback) == (
        "card_arrival", "answered", False, False)
    assert decision.reply == load_replies()["card_arrival"]
    assert conversation.turns == 1 and conversation.last_intent == "card_arrival"


@pytest.mark.parametrize(
    ("p", "reason"),
    [((0.1, 0.1, 0.8), "out_of_scope"), ((0.45, 0.3, 0.25), "low_confidence"), ((0.52, 0.46, 0.02), "ambiguous")],
)
def test_unsure_messages_fall_back(policy: DialoguePolicy, p: tuple[float, ...], reason: str) -> None:
    decision = policy.decide(probs(*p), "hmm", Conversation())
    assert decision.fallback and not decision.handoff and decision.reason == reason
    assert decision.reply == load_replies()["_fallback"]


def test_fallbacks_in_a_row_hand_off_and_the_bot_then_stays_out(policy: DialoguePolicy) -> None:
    conversation = Conversation()
    assert policy.decide(probs(0.1, 0.1, 0.8), "weather?", conversation).reason == "out_of_scope"
    second = policy.decide(probs(0.1, 0.1, 0.8), "pasta recipe?", conversation)
    assert second.handoff and second.reason == "repeated_fallback"
    after = policy.decide(probs(0.9, 0.05, 0.05), "where is my card", conversation)
    assert after.handoff and after.reason == "already_handed_off"


def test_an_answer_resets_the_fallback_count(policy: DialoguePolicy) -> None:
    conversation = Conversation()
    policy.decide(probs(0.1, 0.1, 0.8), "weather?", conversation)
    policy.decide(probs(0.9, 0.05, 0.05), "where is my card", conversation)
    assert not policy.decide(probs(0.1, 0.1, 0.8), "weather?", conversation).handoff


def test_asking_for_a_person_hands_off_at_once(policy: DialoguePolicy) -> None:
    decision = policy.decide(probs(0.9, 0.05, 0.05), "please let me talk to a human", Conversation())
    assert decision.handoff and decision.reason == "human_requested" and not decision.fallback


@pytest.mark.parametrize("text", ["Let me talk to a human", "agent please", "HUMAN!!", "connect me with an agent",
                                  "I want to speak to a real person", "Please transfer me to a representative"])
def test_requests_for_a_person(text: str) -> None:
    assert asks_for_a_person(text)


@pytest.mark.parametrize("text", ["Do I need to speak to a representative to change my pin?", "Someone stole my card!",
                                  "I am sending the deposit to the agent but it fails",
                                  "I would like to get help from someone with activating my card."])
def test_not_requests_for_a_person(text: str) -> None:
    assert not asks_for_a_person(text)


def test_every_banking77_intent_has_its_own_specific_reply() -> None:
    replies = load_replies()
    intents = [k for k in replies if not k.startswith("_")]
    assert len(intents) == 77
    assert len({replies[k] for k in intents}) == 77, "two intents share a reply"
    assert all(len(replies[k]) >= 80 for k in intents), "a reply too short to be useful"


def test_a_label_without_reply_is_refused() -> None:
    with pytest.raises(ValueError, match="no reply"):
        DialoguePolicy(["made_up_intent", "out_of_scope"], load_replies(), 0.5, 0.1, 2)
