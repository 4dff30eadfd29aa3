"""One transaction -> the model's input vector. Training and the worker call the same function."""

from __future__ import annotations

import math

import numpy as np

from fraud_scoring.data import CATEGORIES

NUMERIC = ("log_amount", "hour_sin", "hour_cos", "log_distance", "card_present", "recent_transactions")
FEATURES = NUMERIC + tuple(f"category_{c}" for c in CATEGORIES)
"""The names of the columns of the model's ``features`` input, in order."""


def feature_vector(amount: float, ts: float, distance_km: float, card_present: bool, category: str,
                   recent_transactions: int) -> np.ndarray:
    hour = (ts / 3600) % 24
    row = np.zeros(len(FEATURES), np.float32)
    row[:len(NUMERIC)] = (math.log1p(amount), math.sin(2 * math.pi * hour / 24), math.cos(2 * math.pi * hour / 24),
                          math.log1p(distance_km), float(card_present), float(recent_transactions))
    row[len(NUMERIC) + CATEGORIES.index(category)] = 1.0
    return row
