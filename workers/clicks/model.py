"""The session model as the worker runs it: a one-step ONNX graph ``(item, event, state) -> (scores, state)``.

The recurrent state of every live session stays in the worker's per-key state; each event costs one
row of one batched ONNX Runtime call, whatever the session's length. ``items.json`` maps catalogue
item ids to the model's indices (0 = an item the model never saw; it still advances the state).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workers.clicks.events import Event, event_index
from workers.clicks.scoring import Prediction
from workers.runtime.artifact import Manifest
from workers.runtime.onnx_model import OnnxModel
from workers.settings import OnnxSettings


def top_items(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``scores`` [batch, items + 1]: the ``k`` best item indices, best first, and their scores.
    Index 0 ("an item the model never saw") is never recommended; ``scores`` is changed in place."""
    scores[:, 0] = -np.inf
    k = min(k, scores.shape[1] - 1)
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(top_scores, order, axis=1)


@dataclass(slots=True)
class SessionState:
    hidden: np.ndarray
    events: int = 0


class SessionManifest(Manifest):
    """The session model's manifest: ``session`` holds its state size, item count and heads."""

    session: dict[str, Any]


class SessionModel:
    def __init__(self, model_dir: str | Path, onnx: OnnxSettings) -> None:
        model_dir = Path(model_dir)
        self.onnx = OnnxModel(model_dir, onnx)
        session = SessionManifest.load(model_dir).session
        self.state_size: int = session["state_size"]
        self.has_purchase_head: bool = session["has_purchase_head"]
        self.items: list[str] = json.loads((model_dir / "items.json").read_text())
        self.index = {item: i + 1 for i, item in enumerate(self.items)}
        self._item_array = np.array(self.items, dtype=object)

    @property
    def version(self) -> str:
        return self.onnx.version

    def new_state(self) -> SessionState:
        return SessionState(np.zeros(self.state_size, dtype=np.float32))

    def step(self, states: list[SessionState], events: list[Event], k: int) -> list[Prediction]:
        item_ids = np.array([self.index.get(e.item_id, 0) for e in events], dtype=np.int64)
        feeds = {
            "item": item_ids,
            "event": np.array([event_index(e.event_type) for e in events], dtype=np.int64),
            "state": np.stack([s.hidden for s in states]),
        }
        out = self.onnx.run(feeds)
        best, top_scores = top_items(out["scores"], k)
        # 6 decimals, rounded in float64, so the JSON result carries short numbers (and encodes fast)
        best_scores = np.round(top_scores.astype(np.float64), 6).tolist()
        best_items = self._item_array[best - 1].tolist()
        purchase = np.round(out["purchase"][:, 0].astype(np.float64), 6).tolist() if self.has_purchase_head else None
        known = item_ids.astype(bool).tolist()
        predictions = []
        for row, state in enumerate(states):
            state.hidden = out["next_state"][row]
            state.events += 1
            predictions.append(Prediction(list(zip(best_items[row], best_scores[row], strict=True)),
                                          purchase[row] if purchase is not None else None, known[row]))
        return predictions

    def warmup(self, runs: int) -> None:
        states = [self.new_state() for _ in range(8)]
        events = [Event("warmup", self.items[0], 0.0)] * 8
        observer, self.onnx.observer = self.onnx.observer, None
        try:
            for _ in range(runs):
                self.step([SessionState(s.hidden.copy()) for s in states], events, 20)
        finally:
            self.onnx.observer = observer
