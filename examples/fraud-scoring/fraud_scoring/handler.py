"""Transactions (``payments.transactions``, key = card id) -> scores (``payments.fraud_scores``).

Message::

    {"transaction_id": "tx-1", "card_id": "card-7", "ts": 1790000000.0, "amount": 129.9,
     "merchant_category": "electronics", "distance_km": 310.0, "card_present": false}

Result::

    {"transaction_id": "tx-1", "card_id": "card-7", "fraud_probability": 0.91, "alert": true,
     "recent_transactions": 2, "model_version": "...", "latency": {...}}

Per card the worker keeps the times of its recent transactions (``velocity_window_s``): the model's
``recent_transactions`` input. The engine keeps each card's messages in order; the state expires with
``WORKERS_STATE_TTL_S``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fraud_scoring import metrics
from fraud_scoring.data import CATEGORIES
from fraud_scoring.features import feature_vector
from fraud_scoring.settings import FraudSettings
from workers.engine.handler import InvalidMessage, Outcome, Pending, Result, StatefulHandler, latency_fields
from workers.runtime.onnx_model import OnnxModel
from workers.settings import Settings
from workers.toolkit.codec import (check_schema_version, decode_json_object, encode_json, require_id, require_string,
                                   require_timestamp)
from workers.transport.records import Record


@dataclass(frozen=True, slots=True)
class Transaction:
    transaction_id: str | int
    card_id: str
    ts: float
    amount: float
    category: str
    distance_km: float
    card_present: bool


def _number(payload: dict[str, Any], name: str, low: float, high: float) -> float:
    value = payload.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidMessage("wrong_type", f"{name!r} must be a number")
    if not low <= value <= high:
        raise InvalidMessage("out_of_range", f"{name!r} = {value} is outside {low}..{high}")
    return float(value)


def parse_transaction(record: Record) -> Transaction:
    payload = decode_json_object(record, max_bytes=8 * 1024)
    check_schema_version(payload)
    card_id = require_string(payload, "card_id", 128)
    category = payload.get("merchant_category")
    if category not in CATEGORIES:
        raise InvalidMessage("unknown_category", f"merchant_category {category!r}; known: {', '.join(CATEGORIES)}")
    present = payload.get("card_present")
    if not isinstance(present, bool):
        raise InvalidMessage("wrong_type", "'card_present' must be true or false")
    if record.key is not None and record.key != card_id.encode():
        raise InvalidMessage("key_mismatch", "the record key must be the card_id (it keeps a card's transactions in order)")
    return Transaction(require_id(payload, "transaction_id"), card_id, require_timestamp(payload),
                       _number(payload, "amount", 0, 1e7), category, _number(payload, "distance_km", 0, 20_100),
                       present)


class FraudHandler(StatefulHandler[Transaction]):
    name = "fraud"
    input_topic = "payments.transactions"
    output_topic = "payments.fraud_scores"

    def __init__(self, model_dir: str | Path, settings: Settings) -> None:
        self.model = OnnxModel(model_dir, settings.onnx)
        self.options = settings.of(FraudSettings)
        self.alerts = metrics.ALERTS.labels(worker=self.name)
        self.cards = self.init_state(list, settings.engine.state_ttl_s, settings.engine.max_keys)

    def decode(self, record: Record) -> tuple[str, Transaction]:
        transaction = parse_transaction(record)
        return transaction.card_id, transaction

    def process(self, batch: list[Pending[Transaction]]) -> list[Outcome]:
        rows, recent = [], []
        for item in batch:  # in batch order, so a card's earlier transaction counts for its later one
            t = item.value
            times: list[float] = self.cards.get(t.card_id, item.record.partition)
            times[:] = [ts for ts in times if t.ts - self.options.velocity_window_s <= ts <= t.ts]
            recent.append(len(times))
            rows.append(feature_vector(t.amount, t.ts, t.distance_km, t.card_present, t.category, len(times)))
            times.append(t.ts)
        probabilities = self.model.run({"features": np.stack(rows)})["fraud_probability"][:, 0]
        latencies = latency_fields(batch, self.model.last_run_s)
        outcomes: list[Outcome] = []
        for item, probability, count, latency in zip(batch, probabilities.tolist(), recent, latencies, strict=True):
            alert = probability >= self.options.alert_threshold
            self.alerts.inc(alert)
            result = {"transaction_id": item.value.transaction_id, "card_id": item.value.card_id,
                      "fraud_probability": round(probability, 4), "alert": alert, "recent_transactions": count,
                      "model_version": self.model.version, "latency": latency}
            outcomes.append([Result(encode_json(result), item.value.card_id.encode())])
        self.report_state()
        return outcomes
