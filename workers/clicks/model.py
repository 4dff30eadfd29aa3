"""The session model as the worker runs it: a one-step ONNX graph ``(item, event, state) -> (scores, state)``,
blended with count and neighbourhood signals when the artifact is a hybrid.

The recurrent state of every live session stays in the worker's per-key state; each event costs one
row of one batched ONNX Runtime call, whatever the session's length. ``items.json`` maps catalogue
item ids to the model's indices (0 = an item the model never saw; it still advances the state).

A hybrid artifact (``session.kind: hybrid``) also holds the training sessions' counts (``counts.*``,
:class:`workers.clicks.neighbours.Counts`) and ``session.blend``, the weight of each signal (``gru`` and
those of :data:`workers.clicks.neighbours.SIGNALS`), chosen on a later validation window. The served score
is the weighted sum of the signals, each normalised to sum 1 per session; the session's recent items are
part of its state.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workers.clicks.events import Event, event_index
from workers.clicks.neighbours import HISTORY, Counts, normalised, normalised_in_place
from workers.clicks.scoring import Prediction
from workers.runtime.artifact import Manifest
from workers.runtime.onnx_model import OnnxModel
from workers.settings import OnnxSettings


def top_items(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``scores`` [batch, items + 1]: the ``k`` best item indices, best first (ties: the lower index
    first), and their scores. Index 0 ("an item the model never saw") is never recommended; ``scores`` is changed
    in place.

    Why not ``argpartition``: on rows of ~1,000 items it costs ~9 us a row, the largest single cost of the clicks
    hot path. Here a bound is found cheaply instead: the rows are cut into ``2k`` strided columns, and the k-th
    largest column maximum is at most the row's k-th largest score (k elements reach it). Only the few scores at
    or above it (about 1.3k on real rows) are sorted: ~3 us a row, the same items in the same order."""
    scores[:, 0] = -np.inf
    rows, width = scores.shape
    k = min(k, width - 1)
    columns = 2 * k
    depth = width // columns
    if depth >= 2:
        maxima = scores[:, : depth * columns].reshape(rows, depth, columns).max(axis=1)
        bound = np.partition(maxima, columns - k, axis=1)[:, columns - k]
        flat = np.flatnonzero(scores >= bound[:, None])
        row, column = np.divmod(flat, width)
        counts = np.bincount(row, minlength=rows)
        if counts.min(initial=k) >= k:  # else a NaN bound: the full sort below
            values = scores.ravel()[flat]
            order = np.lexsort((column, -values, row))  # row by row: best first, then the lower index
            rank = np.arange(len(order)) - (np.cumsum(counts) - counts)[row]
            keep = order[rank < k]
            return column[keep].reshape(rows, k), values[keep].reshape(rows, k)
    best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return best, np.take_along_axis(scores, best, axis=1)


@dataclass(slots=True)
class SessionState:
    hidden: np.ndarray
    events: int = 0
    history: list[int] = field(default_factory=list)
    """The session's most recent item indices (oldest first; at most ``neighbours.HISTORY``)."""


class SessionStateCodec:
    """A session's state in the changelog: event count (u32), history length (u16), history (int32), hidden
    vector (float32, bit for bit); little-endian."""

    _HEAD = struct.Struct("<IH")

    def encode(self, state: SessionState) -> bytes:
        history = state.history
        return (struct.pack(f"<IH{len(history)}i", state.events, len(history), *history)
                + np.asarray(state.hidden, "<f4").tobytes())

    def decode(self, data: bytes) -> SessionState:
        events, n = self._HEAD.unpack_from(data)
        start = self._HEAD.size
        history = list(struct.unpack_from(f"<{n}i", data, start))
        hidden = np.frombuffer(data, "<f4", offset=start + 4 * n).astype(np.float32)
        return SessionState(hidden, events, history)


def advance(states: list[SessionState], item_ids: list[int]) -> list[list[int]]:
    """Append each event's item to its session's history (bounded); returns the histories."""
    for state, item in zip(states, item_ids, strict=True):
        state.history.append(item)
        del state.history[:-HISTORY]
    return [state.history for state in states]


def ranked(scores: np.ndarray, k: int, items: np.ndarray) -> list[list[tuple[str, float]]]:
    """Per row, the ``k`` best ``(item id, score)`` (scores rounded to 6 decimals, so results stay short)."""
    best, top_scores = top_items(scores, k)
    return [list(zip(row_items, row_scores, strict=True)) for row_items, row_scores
            in zip(items[best - 1].tolist(), np.round(top_scores.astype(np.float64), 6).tolist(), strict=True)]


class SessionManifest(Manifest):
    """The session model's manifest: ``session`` holds its state size, item count and heads."""

    session: dict[str, Any]


COUNTS = "counts"
"""File stem of a hybrid artifact's counts (``counts.sessions.npz`` and the rest)."""


class CountScorer:
    """One count or neighbourhood signal as a session scorer: the baselines, scored as the model is."""

    has_purchase_head = False

    def __init__(self, counts: Counts, items: list[str], signal: str, version: str = "baseline") -> None:
        self.counts, self.signal, self.version = counts, signal, version
        self.index = {item: i + 1 for i, item in enumerate(items)}
        self._item_array = np.array(items, dtype=object)
        # ties (equal counts, an unseen last item) go to the more popular item: float64, so they survive the sum
        self._ties = 1e-9 * normalised(counts.popularity[None, :]).astype(np.float64)

    def new_state(self) -> SessionState:
        return SessionState(np.zeros(0, np.float32))

    def step(self, states: list[SessionState], events: list[Event], k: int) -> list[Prediction]:
        item_ids = [self.index.get(e.item_id, 0) for e in events]
        histories = advance(states, item_ids)
        rows = ranked(self.counts.scores(self.signal, histories) + self._ties, k, self._item_array)
        for state in states:
            state.events += 1
        return [Prediction(row, None, bool(item)) for row, item in zip(rows, item_ids, strict=True)]


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
        self.blend: dict[str, float] = session.get("blend", {"gru": 1.0}) if session.get("kind") == "hybrid" else {"gru": 1.0}
        self.counts = Counts.load(model_dir / COUNTS) if set(self.blend) - {"gru"} else None

    @property
    def version(self) -> str:
        return self.onnx.version

    def new_state(self) -> SessionState:
        return SessionState(np.zeros(self.state_size, dtype=np.float32))

    def forward(self, states: list[SessionState], events: list[Event]) -> tuple[dict[str, np.ndarray], np.ndarray,
                                                                              list[list[int]]]:
        """Advance each session by its event (state, count, history) and return the GRU's outputs, the events'
        item indices and the sessions' histories: what :meth:`step` ranks, and what the blend is tuned on."""
        item_ids = np.array([self.index.get(e.item_id, 0) for e in events], dtype=np.int64)
        feeds = {
            "item": item_ids,
            "event": np.array([event_index(e.event_type) for e in events], dtype=np.int64),
            "state": np.stack([s.hidden for s in states]),
        }
        out = self.onnx.run(feeds)
        for row, state in enumerate(states):
            state.hidden = out["next_state"][row]
            state.events += 1
        return out, item_ids, advance(states, item_ids.tolist())

    def step(self, states: list[SessionState], events: list[Event], k: int) -> list[Prediction]:
        out, item_ids, histories = self.forward(states, events)
        next_items = ranked(self.blended(out["scores"], histories), k, self._item_array)
        purchase = np.round(out["purchase"][:, 0].astype(np.float64), 6).tolist() if self.has_purchase_head else None
        known = item_ids.astype(bool).tolist()
        return [Prediction(next_items[row], purchase[row] if purchase is not None else None, known[row])
                for row in range(len(states))]

    def blended(self, gru: np.ndarray, histories: list[list[int]]) -> np.ndarray:
        """The served score rows: the GRU's softmax alone, or the hybrid's weighted sum of normalised signals."""
        if self.counts is None:
            return gru
        total = self.blend.get("gru", 0.0) * gru
        for signal, weight in self.blend.items():
            if signal != "gru" and weight:
                total += normalised_in_place(self.counts.scores(signal, histories), weight)
        return total

    def warmup(self, runs: int) -> None:
        states = [self.new_state() for _ in range(8)]
        events = [Event("warmup", self.items[0], 0.0)] * 8
        observer, self.onnx.observer = self.onnx.observer, None
        try:
            for _ in range(runs):
                self.step([SessionState(s.hidden.copy()) for s in states], events, 20)
        finally:
            self.onnx.observer = observer
