"""Synthetic card transactions with a known fraud process, to train on and to send in the demo.

Most transactions are a card holder's ordinary spending: daytime, near home, card present, everyday
merchants. A stolen card is used in bursts: several transactions within minutes, often at night, far
from home, card not present, at merchants whose goods resell (electronics, jewellery, gift cards), for
larger amounts. Each signal is noisy on its own; the model has to combine them, with the card's recent
transaction count (kept per card by the worker) as one input.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np

CATEGORIES = ("grocery", "fuel", "restaurant", "travel", "online", "electronics", "jewellery", "gift_cards")
RESELLABLE = {"electronics", "jewellery", "gift_cards"}


@dataclass(frozen=True, slots=True)
class Transaction:
    transaction_id: str
    card_id: str
    ts: float
    amount: float
    merchant_category: str
    distance_km: float
    card_present: bool
    fraud: bool  # the truth; never sent to the worker

    def message(self) -> dict[str, object]:
        """What a payment backend would produce to the input topic (without the truth)."""
        body = asdict(self)
        del body["fraud"]
        return body


def generate(n: int, seed: int = 0, fraud_rate: float = 0.03, start_ts: float = 1_790_000_000.0) -> list[Transaction]:
    """``n`` transactions in time order over about a day of traffic, ``fraud_rate`` of them fraudulent."""
    rng = np.random.default_rng(seed)
    out: list[Transaction] = []
    cards = max(50, n // 20)
    clock = start_ts
    while len(out) < n:
        clock += float(rng.exponential(86_400 / max(n, 1)))
        if rng.random() < fraud_rate / 3:  # a stolen card: a burst of about three transactions
            out += list(_burst(rng, clock, f"card-{rng.integers(cards)}", len(out)))
            continue
        hour = (clock / 3600) % 24
        out.append(Transaction(
            transaction_id=f"tx-{seed}-{len(out)}", card_id=f"card-{rng.integers(cards)}", ts=round(clock, 3),
            amount=round(float(rng.lognormal(3.2, 0.9)), 2),
            merchant_category=str(rng.choice(CATEGORIES, p=[.3, .15, .2, .05, .2, .05, .02, .03])),
            distance_km=round(float(rng.exponential(8 if 7 <= hour < 22 else 20)), 1),
            card_present=bool(rng.random() < 0.75), fraud=False))
    return sorted(out[:n], key=lambda t: t.ts)


def _burst(rng: np.random.Generator, clock: float, card: str, first: int) -> Iterator[Transaction]:
    for k in range(int(rng.integers(2, 5))):
        yield Transaction(
            transaction_id=f"tx-f-{first + k}-{int(clock)}", card_id=card, ts=round(clock + k * float(rng.uniform(20, 300)), 3),
            amount=round(float(rng.lognormal(4.6, 1.0)), 2),
            merchant_category=str(rng.choice(CATEGORIES, p=[.05, .05, .05, .1, .3, .2, .1, .15])),
            distance_km=round(float(rng.exponential(400)), 1), card_present=bool(rng.random() < 0.2), fraud=True)


def velocity(transactions: list[Transaction], window_s: float) -> np.ndarray:
    """Per transaction, how many earlier transactions of the same card fall within ``window_s`` before it:
    the feature the worker keeps per card (its state), computed here the same way for training."""
    seen: dict[str, list[float]] = {}
    counts = np.zeros(len(transactions), np.float32)
    for i, t in enumerate(transactions):
        recent = [ts for ts in seen.get(t.card_id, []) if t.ts - ts <= window_s]
        counts[i] = len(recent)
        seen[t.card_id] = recent + [t.ts]
    return counts
