"""What every session scorer (the ONNX model, the successor baseline) offers to the worker and to evaluation.

A scorer is stepped one event at a time per session, with the session's state passed in and updated
in place, so the Kafka worker, ``workers predict clicks`` and the offline evaluation run the same code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
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


def load_scorer(model_dir: str | Path, onnx_settings: Any = None) -> SessionScorer:
    """The scorer a model directory holds: the ONNX session model, or the successor-count baseline."""
    model_dir = Path(model_dir)
    kind = json.loads((model_dir / "manifest.json").read_text()).get("session", {}).get("kind", "gru")
    if kind == "baseline":
        from workers.clicks.baseline import SuccessorBaseline

        return SuccessorBaseline.load(model_dir)
    from workers.clicks.model import SessionModel
    from workers.settings import OnnxSettings

    return SessionModel(model_dir, onnx_settings or OnnxSettings())
