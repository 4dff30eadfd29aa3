import json

import pytest

from models import ARTIFACTS
from workers.clicks.evaluate import replay
from workers.clicks.events import Event, sessions
from workers.clicks.handler import ClicksHandler, parse_click
from workers.clicks.model import SessionModel
from workers.clicks.synthetic import generate
from workers.engine.handler import InvalidMessage, Pending
from workers.settings import load_settings
from workers.transport.records import Record

GOOD = {"session_id": "s1", "item_id": "i3", "event_type": "view", "ts": 1795340000.5}
MODEL = ARTIFACTS / "clicks"
needs_model = pytest.mark.skipif(not (MODEL / "model.onnx").exists(), reason="clicks model not built")


def record(payload: object, key: bytes | None = b"s1", offset: int = 0) -> Record:
    value = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Record("clicks.events", 0, offset, key, value)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\xff", "invalid_utf8"),
        (b"[1, 2]", "wrong_type"),
        ({k: v for k, v in GOOD.items() if k != "item_id"}, "missing_field"),
        ({k: v for k, v in GOOD.items() if k != "session_id"}, "missing_field"),
        (GOOD | {"item_id": 1.5}, "wrong_type"),
        (GOOD | {"item_id": None}, "wrong_type"),
        (GOOD | {"event_type": "teleport"}, "unknown_event_type"),
        (GOOD | {"ts": float("inf")}, "invalid_json"),
        (GOOD | {"ts": 1e20}, "out_of_range"),
        (GOOD | {"user_id": [1]}, "wrong_type"),
        (GOOD | {"k": 0}, "out_of_range"),
        (GOOD | {"k": 1000}, "out_of_range"),
        (GOOD | {"schema_version": 2}, "unsupported_schema"),
        (b"{" + b" " * 20000 + b"}", "too_large"),
    ],
)
def test_malformed_events_are_refused_with_a_reason(payload: object, code: str) -> None:
    if isinstance(payload, dict) and payload.get("ts") == float("inf"):
        payload = json.dumps(payload).encode()  # Python writes Infinity, which is not JSON
    with pytest.raises(InvalidMessage) as caught:
        parse_click(record(payload))
    assert caught.value.code == code


def test_the_key_must_be_the_session_and_item_ids_may_be_numbers() -> None:
    with pytest.raises(InvalidMessage, match="key_mismatch"):
        parse_click(record(GOOD, key=b"s2"))
    event, k = parse_click(record(GOOD | {"item_id": 214536502, "k": 5}, key=None))
    assert event == Event("s1", "214536502", 1795340000.5, "view") and k == 5


@needs_model
def test_interleaved_sessions_match_the_offline_replay() -> None:
    events = generate(40, seed=11)
    handler = ClicksHandler(MODEL, load_settings())
    results: list[dict] = []
    pending = list(events)  # time order, sessions interleaved
    while pending:  # batches as the engine forms them: at most 16, one event per session, arrival order kept
        batch, rest = [], []
        for e in pending:
            (rest if len(batch) == 16 or any(b.session_id == e.session_id for b in batch) else batch).append(e)
        items = [Pending(record(_wire(e), key=e.session_id.encode()), e.session_id,
                         parse_click(record(_wire(e), key=e.session_id.encode()))) for e in batch]
        results += [json.loads(o[0].value) for o in handler.process(items)]
        pending = rest

    offline = {(sid, pos): p for sid, pos, p in replay(SessionModel(MODEL, load_settings().onnx), sessions(events), 20)}
    assert len(results) == len(events) == len(offline)
    for result in results:
        want = offline[(result["session_id"], result["position"])]
        assert [i["item_id"] for i in result["next_items"]] == [i for i, _ in want.next_items]
        assert result["purchase_probability"] == pytest.approx(want.purchase_probability, abs=1e-5)
        assert result["model_version"] == handler.scorer.version and "inference_ms" in result["latency"]


@needs_model
def test_unknown_items_advance_the_session_and_state_stays_bounded() -> None:
    settings = load_settings(engine={"max_keys": 3})
    handler = ClicksHandler(MODEL, settings)
    body = GOOD | {"item_id": "never-sold", "k": 3}
    out = handler.process([Pending(record(body), "s1", parse_click(record(body)))])
    result = json.loads(out[0][0].value)
    assert result["unknown_item"] and len(result["next_items"]) == 3 and result["position"] == 0
    for n in range(5):
        body = GOOD | {"session_id": f"x{n}"}
        handler.process([Pending(record(body, key=None), f"x{n}", parse_click(record(body, key=None)))])
    assert len(handler.sessions) == 3 and "s1" not in handler.sessions


def _wire(event: Event) -> dict:
    return {"session_id": event.session_id, "item_id": event.item_id, "event_type": event.event_type, "ts": event.ts,
            "user_id": event.user_id}


@needs_model
def test_a_new_model_version_starts_sessions_fresh() -> None:
    """Hot reload: recurrent states of one model version mean nothing to another, so they are not adopted."""
    old = ClicksHandler(MODEL, load_settings())
    old.process([Pending(record(GOOD), "s1", parse_click(record(GOOD)))])
    new = ClicksHandler(MODEL, load_settings())
    new.adopt(old)
    assert len(old.sessions) == 1 and len(new.sessions) == 0


@needs_model
def test_a_session_restored_from_its_changelog_bytes_predicts_bit_for_bit_the_same() -> None:
    handler = ClicksHandler(MODEL, load_settings())
    events = [e for e in generate(40, seed=3) if e.session_id == generate(40, seed=3)[0].session_id][:6]
    items = [Pending(record(_wire(e), key=e.session_id.encode(), offset=n), e.session_id,
                     parse_click(record(_wire(e), key=e.session_id.encode()))) for n, e in enumerate(events)]
    for item in items[:-1]:
        handler.process([item])
    codec = handler.state_codec
    state = handler.sessions.get(events[0].session_id, 0)
    restored = codec.decode(codec.encode(state))
    assert restored.hidden.tobytes() == state.hidden.tobytes() and restored.history == state.history
    expected = json.loads(handler.process([items[-1]])[0][0].value)
    handler.sessions.put(events[0].session_id, 0, restored)
    again = json.loads(handler.process([items[-1]])[0][0].value)
    assert {k: v for k, v in again.items() if k != "latency"} == {k: v for k, v in expected.items() if k != "latency"}
