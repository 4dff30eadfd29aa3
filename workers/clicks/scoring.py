"""What every session scorer (the ONNX model, the successor baseline) offers to the worker and to evaluation.

A scorer is stepped one event at a time per session, with the session's state passed in and updated
in place, so the Kafka worker, ``workers predict clicks`` and the offline evaluation run the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from workers.clicks.events import Event


@dataclass(slots=True)
class Prediction:
    next_items: list[tuple[str, float]]
    """Top-k ``(item_id, score)``, best first."""
    purchase_probability: float | None
    """Probability that the session will still end in a purchase; None when the scorer has no such head."""
    known_item: bool
    """False when the event's item was not in the training catalogue (the scorer then uses the session so far)."""


class SessionScorer(Protocol):
    version: str
    has_purchase_head: bool

    def new_state(self) -> Any:
        """A fresh session's state."""

    def step(self, states: list[Any], events: list[Event], k: int) -> list[Prediction]:
        """Advance each session by its event (one per session) and predict; ``states`` are updated in place."""
