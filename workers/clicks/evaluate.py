"""Offline evaluation on held-out sessions, through the same ``step`` the worker calls.

Next item: at every position but the last, is the next event's item among the top k (HR@k), and the
reciprocal rank if so (MRR@k). Items never seen in training count as misses. Purchase intent: ROC AUC
of the purchase probability at every position but the last, against "this session still buys later".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from workers.clicks.events import Event, purchase_after
from workers.clicks.scoring import Prediction, SessionScorer


def replay(scorer: SessionScorer, sessions: dict[str, list[Event]], k: int) -> Iterator[tuple[str, int, Prediction]]:
    """``(session_id, position, prediction)`` for every event, sessions batched position by position."""
    order = sorted(sessions, key=lambda sid: -len(sessions[sid]))
    states = {sid: scorer.new_state() for sid in order}
    longest = len(sessions[order[0]]) if order else 0
    for position in range(longest):
        active = [sid for sid in order if len(sessions[sid]) > position]  # a prefix of ``order``
        for start in range(0, len(active), 512):
            chunk = active[start : start + 512]
            predictions = scorer.step([states[s] for s in chunk], [sessions[s][position] for s in chunk], k)
            for sid, prediction in zip(chunk, predictions, strict=True):
                yield sid, position, prediction


def evaluate(scorer: SessionScorer, sessions: dict[str, list[Event]], k: int = 20) -> dict[str, Any]:
    hits, reciprocal, labels, probabilities = [], [], [], []
    buys_after = {sid: purchase_after(events) for sid, events in sessions.items()}
    for sid, position, prediction in replay(scorer, sessions, k):
        events = sessions[sid]
        if position == len(events) - 1:
            continue
        target = events[position + 1].item_id
        ranked = [item for item, _ in prediction.next_items[:k]]
        rank = ranked.index(target) + 1 if target in ranked else 0
        hits.append(rank > 0)
        reciprocal.append(1.0 / rank if rank else 0.0)
        if prediction.purchase_probability is not None:
            labels.append(buys_after[sid][position])
            probabilities.append(prediction.purchase_probability)
    result: dict[str, Any] = {
        f"hr@{k}": round(float(np.mean(hits)), 4) if hits else None,
        f"mrr@{k}": round(float(np.mean(reciprocal)), 4) if reciprocal else None,
        "predictions": len(hits),
        "sessions": len(sessions),
    }
    if probabilities and 0 < sum(labels) < len(labels):
        result["purchase_auc"] = round(roc_auc(np.array(labels), np.array(probabilities)), 4)
    return result


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney form of the ROC AUC, ties counted half."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    positives = labels.astype(bool)
    n_pos, n_neg = positives.sum(), (~positives).sum()
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
