"""Clicks worker: ``clicks.events`` -> ``clicks.predictions``.

Event (key = session_id)::

    {"session_id": "s-9", "item_id": "i42", "event_type": "view", "ts": 1795340000.0, "user_id": "u7", "k": 20}

Prediction::

    {"session_id": "s-9", "user_id": "u7", "item_id": "i42", "position": 3,
     "next_items": [{"item_id": "i17", "score": 0.31}, ...], "purchase_probability": 0.12,
     "unknown_item": false, "model_version": "...", "latency": {...}}

Each session's recurrent state lives in per-key state (idle expiry, a cap on sessions held); one event
of a session per batch, so events of a session are applied in order. An item the model never saw
still advances the session (``unknown_item: true``), it is not an error.
"""

from __future__ import annotations

from pathlib import Path

from workers.clicks.events import EVENT_TYPES, Event
from workers.clicks.model import SessionModel, SessionStateCodec
from workers.toolkit.codec import check_schema_version, decode_json_object, encode_json, require_id, require_string, require_timestamp
from workers.engine.handler import InvalidMessage, Outcome, Pending, Result, StatefulHandler, latency_fields
from workers.settings import Settings
from workers.transport.records import Record

DEFAULT_K = 20
MAX_K = 100


def parse_click(record: Record) -> tuple[Event, int]:
    """A record -> (event, k). Raises :class:`InvalidMessage` with a DLQ reason."""
    payload = decode_json_object(record, max_bytes=16 * 1024)
    check_schema_version(payload)
    session_id = require_string(payload, "session_id", 256)
    item_id = require_id(payload, "item_id")
    event_type = payload.get("event_type", "click")
    if event_type not in EVENT_TYPES:
        raise InvalidMessage("unknown_event_type", f"event_type {event_type!r}; known: {', '.join(EVENT_TYPES)}")
    ts = require_timestamp(payload)
    user_id = payload.get("user_id")
    if user_id is not None:
        user_id = str(require_id(payload, "user_id"))
    k = payload.get("k", DEFAULT_K)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidMessage("out_of_range", f"'k' must be an integer 1..{MAX_K}")
    if record.key is not None and record.key != session_id.encode():
        raise InvalidMessage("key_mismatch", "the record key must be the session_id (it keeps a session in order)")
    return Event(session_id, str(item_id), ts, event_type, user_id), k


class ClicksHandler(StatefulHandler[tuple[Event, int]]):
    name = "clicks"
    input_topic = "clicks.events"
    output_topic = "clicks.predictions"
    one_per_key = True
    state_belongs_to_model = True  # hidden vectors of one model version mean nothing to another
    state_codec = SessionStateCodec()

    def __init__(self, model_dir: str | Path, settings: Settings) -> None:
        self.scorer = SessionModel(model_dir, settings.onnx)
        self.model = self.scorer.onnx
        self.sessions = self.init_state(self.scorer.new_state, settings.engine.state_ttl_s, settings.engine.max_keys)

    def warmup(self, runs: int) -> None:
        self.scorer.warmup(runs)

    def decode(self, record: Record) -> tuple[str, tuple[Event, int]]:
        event, k = parse_click(record)
        return event.session_id, (event, k)

    def process(self, batch: list[Pending[tuple[Event, int]]]) -> list[Outcome]:
        events = [item.value[0] for item in batch]
        states = [self.sessions.get(e.session_id, item.record.partition) for e, item in zip(events, batch, strict=True)]
        k = max(item.value[1] for item in batch)
        predictions = self.scorer.step(states, events, k)
        latencies = latency_fields(batch, self.model.last_run_s)
        outcomes: list[Outcome] = []
        for item, event, state, prediction, latency in zip(batch, events, states, predictions, latencies, strict=True):
            result = {
                "session_id": event.session_id,
                **({"user_id": event.user_id} if event.user_id is not None else {}),
                "item_id": event.item_id,
                "position": state.events - 1,
                "next_items": [{"item_id": i, "score": s} for i, s in prediction.next_items[: item.value[1]]],
                **({"purchase_probability": prediction.purchase_probability}
                   if prediction.purchase_probability is not None else {}),
                "unknown_item": not prediction.known_item,
                "model_version": self.scorer.version,
                "latency": latency,
            }
            outcomes.append([Result(encode_json(result), event.session_id.encode())])
        self.report_state()
        return outcomes
