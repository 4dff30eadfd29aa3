"""The strong non-neural baseline: most frequent successor of the last item, filled with popular items.

On session logs it is close to published neural models (Ludewig et al., 2019/2021), so a model has
to beat it to be worth serving. ``workers train clicks --model baseline`` writes one.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from pathlib import Path

from workers.clicks.events import Event
from workers.clicks.scoring import Prediction
from workers.runtime.artifact import load_manifest, write_manifest

KEEP_SUCCESSORS = 100


class SuccessorBaseline:
    has_purchase_head = False

    def __init__(self, successors: dict[str, list[tuple[str, int]]], popular: list[tuple[str, int]], version: str) -> None:
        self.successors = successors
        self.popular = popular
        self.version = version

    @classmethod
    def fit(cls, sessions: dict[str, list[Event]], version: str = "baseline") -> SuccessorBaseline:
        pairs: dict[str, Counter[str]] = defaultdict(Counter)
        popularity: Counter[str] = Counter()
        for events in sessions.values():
            popularity.update(e.item_id for e in events)
            for a, b in zip(events, events[1:]):
                pairs[a.item_id][b.item_id] += 1
        successors = {a: _ranked(c)[:KEEP_SUCCESSORS] for a, c in pairs.items()}
        return cls(successors, _ranked(popularity)[:KEEP_SUCCESSORS], version)

    def save(self, model_dir: str | Path, metrics: dict | None = None) -> None:
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / "baseline.json").write_text(json.dumps({"successors": self.successors, "popular": self.popular}))
        manifest = {"name": "clicks-baseline", "version": self.version, "created": dt.datetime.now(dt.UTC).isoformat(),
                    "inputs": [], "outputs": [], "session": {"kind": "baseline"}, "metrics": metrics or {}}
        write_manifest(model_dir, manifest)

    @classmethod
    def load(cls, model_dir: str | Path) -> SuccessorBaseline:
        model_dir = Path(model_dir)
        data = json.loads((model_dir / "baseline.json").read_text())
        successors = {a: [(b, n) for b, n in s] for a, s in data["successors"].items()}
        return cls(successors, [(b, n) for b, n in data["popular"]], load_manifest(model_dir).version)

    def new_state(self) -> list[str]:
        return []  # the last item, once seen

    def step(self, states: list[list[str]], events: list[Event], k: int) -> list[Prediction]:
        predictions = []
        for state, event in zip(states, events, strict=True):
            state[:] = [event.item_id]
            ranked = self.successors.get(event.item_id, [])[:k]
            chosen = {item for item, _ in ranked}
            scores = [(item, float(n)) for item, n in ranked]
            for item, _ in self.popular:
                if len(scores) >= k:
                    break
                if item not in chosen:
                    scores.append((item, 0.0))  # popularity fill ranks below every observed successor
            known = event.item_id in self.successors or any(item == event.item_id for item, _ in self.popular)
            predictions.append(Prediction(scores, None, known))
        return predictions


def _ranked(counter: Counter[str]) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
