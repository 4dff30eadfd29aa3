"""The clicks hybrid: which weights blend the GRU with the count signals, and the evaluation table.

The weights are chosen on a validation window that follows the GRU's training sessions in time (the
counts are fitted on the training sessions only), maximising the smaller of the hybrid's two ratios to
the best baseline on that window: HR@20 / best baseline HR@20 and MRR@20 / best baseline MRR@20. The test
window is never looked at; :func:`evaluation_table` measures every baseline and the served scorer on it
through the same ``step`` the worker calls.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from workers.clicks.evaluate import evaluate
from workers.clicks.events import Event
from workers.clicks.model import CountScorer, SessionModel
from workers.clicks.neighbours import SIGNALS, Counts, normalised

log = logging.getLogger(__name__)
K = 20
BLENDED = ("successor", "item_knn", "cooccurrence")
"""Signals the hybrid may add to the GRU: those cheap enough to serve (the neighbourhood searches of SKNN and
V-SKNN cost ~5x more per event; ``cooccurrence`` is V-SKNN's vote precomputed) and that ever helped."""
GRID = (0.0, 0.5, 1.0, 2.0, 4.0)


def fit_counts(model: SessionModel, group: dict[str, list[Event]]) -> Counts:
    """Counts over ``model``'s item index from the sessions of ``group``, the most recent last."""
    ordered = sorted(group.values(), key=lambda events: events[0].ts)
    return Counts.fit(([model.index.get(e.item_id, 0) for e in events] for events in ordered), len(model.items))


def _signal_rows(model: SessionModel, counts: Counts, group: dict[str, list[Event]],
                 chunk: int = 256) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray]]:
    """Every prediction of ``group`` (every position but a session's last), in chunks: each signal's
    normalised rows (popularity-broken ties, as the baselines rank) and the index of the item that came next."""
    ties = 1e-9 * normalised(counts.popularity[None, :]).astype(np.float64)
    order = sorted(group, key=lambda sid: -len(group[sid]))
    states = {sid: model.new_state() for sid in order}
    for position in range(len(group[order[0]]) - 1 if order else 0):
        active = [sid for sid in order if len(group[sid]) > position + 1]
        for start in range(0, len(active), chunk):
            ids = active[start:start + chunk]
            out, _, histories = model.forward([states[s] for s in ids], [group[s][position] for s in ids])
            rows = {"gru": out["scores"]}
            rows |= {signal: normalised(counts.scores(signal, histories)) + ties for signal in SIGNALS}
            targets = np.array([model.index.get(group[s][position + 1].item_id, 0) for s in ids])
            yield rows, targets


def _hits(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """HR@K and reciprocal rank (0 past K) of each row's target; an unknown target (0) is a miss."""
    scores = scores.copy()
    scores[:, 0] = -np.inf
    target_scores = scores[np.arange(len(targets)), targets][:, None]
    rank = (scores > target_scores).sum(axis=1) + ((scores == target_scores).sum(axis=1) - 1) / 2 + 1  # ties: halfway
    hit = (rank <= K + 0.5) & (targets > 0)
    return hit, np.where(hit, 1.0 / rank, 0.0)


def choose_blend(model: SessionModel, counts: Counts, validation: dict[str, list[Event]]) -> dict[str, Any]:
    """The blend weights that maximise min(HR ratio, MRR ratio) to the best baseline on ``validation``."""
    candidates = [{"gru": 1.0, **dict(zip(BLENDED, weights, strict=True))}
                  for weights in itertools.product(GRID, repeat=len(BLENDED))]
    singles = [{signal: 1.0} for signal in ("gru", *SIGNALS)]
    totals = np.zeros((len(singles) + len(candidates), 2))
    n = 0
    for rows, targets in _signal_rows(model, counts, validation):
        n += len(targets)
        for c, weights in enumerate(singles + candidates):
            blended = sum(w * rows[s] for s, w in weights.items() if w)
            hit, reciprocal = _hits(blended, targets)
            totals[c] += hit.sum(), reciprocal.sum()
    scores = totals / max(n, 1)
    baselines = {next(iter(w)): scores[c] for c, w in enumerate(singles)}
    best_hr = max(v[0] for s, v in baselines.items() if s != "gru")
    best_mrr = max(v[1] for s, v in baselines.items() if s != "gru")
    ratios = [min(hr / best_hr, mrr / best_mrr) for hr, mrr in scores[len(singles):]]
    chosen = int(np.argmax(ratios))
    weights = {s: w for s, w in candidates[chosen].items() if w}
    report = {"weights": weights, "validation_predictions": n, "validation_hr@20": round(float(scores[len(singles) + chosen][0]), 4),
              "validation_mrr@20": round(float(scores[len(singles) + chosen][1]), 4),
              "validation_best_baseline": {"hr@20": round(float(best_hr), 4), "mrr@20": round(float(best_mrr), 4)},
              "validation_min_ratio": round(float(ratios[chosen]), 4)}
    log.info("blend: %s", report)
    return report


def evaluation_table(model: SessionModel, counts: Counts, test: dict[str, list[Event]]) -> dict[str, dict[str, Any]]:
    """Every baseline (fitted counts) and the model, served as the worker serves them, on ``test``."""
    table: dict[str, dict[str, Any]] = {}
    for signal in SIGNALS:
        table[signal] = evaluate(CountScorer(counts, model.items, signal), test, K)
    served = model.blend, model.counts
    model.blend, model.counts = {"gru": 1.0}, None
    table["gru"] = evaluate(model, test, K)
    model.blend, model.counts = served
    if model.counts is not None:
        table["hybrid"] = evaluate(model, test, K)
    return table


def summary(table: dict[str, dict[str, Any]], served: str) -> dict[str, Any]:
    """The served scorer against the best baseline on each metric, as relative gains."""
    best = {m: max((row[m] or 0.0, name) for name, row in table.items() if name in SIGNALS) for m in ("hr@20", "mrr@20")}
    return {"served": served, **{f"best_baseline_{m}": {"name": name, "value": value} for m, (value, name) in best.items()},
            **{f"served_gain_{m}": round(table[served][m] / value - 1, 4) if value else None
               for m, (value, _) in best.items()}}


def format_table(table: dict[str, dict[str, Any]], served: str) -> str:
    lines = [f"{'scorer':<12} {'HR@20':>7} {'MRR@20':>7} {'purchase AUC':>13} {'predictions':>12}"]
    for name, row in table.items():
        auc = row.get("purchase_auc")
        mark = "  <- served" if name == served else ""
        lines.append(f"{name:<12} {row['hr@20']:>7.4f} {row['mrr@20']:>7.4f} {'' if auc is None else f'{auc:.4f}':>13} "
                     f"{row['predictions']:>12}{mark}")
    gains = summary(table, served)
    lines.append(f"served vs best baseline: HR@20 {gains['served_gain_hr@20']:+.1%} "
                 f"({gains['best_baseline_hr@20']['name']}), MRR@20 {gains['served_gain_mrr@20']:+.1%} "
                 f"({gains['best_baseline_mrr@20']['name']})")
    return "\n".join(lines)

