import numpy as np
import pytest

from workers.clicks.baseline import SuccessorBaseline
from workers.clicks.evaluate import evaluate, replay, roc_auc
from workers.clicks.events import Event


def test_roc_auc_matches_the_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random(300) < 0.3
    scores = np.round(rng.random(300) + labels * 0.3, 1)  # rounding makes ties
    pos, neg = scores[labels], scores[~labels]
    pairwise = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
    assert roc_auc(labels, scores) == pytest.approx(pairwise)


def test_hit_rate_and_mrr_count_every_position_and_unseen_items_as_misses() -> None:
    train = {"t": [Event("t", i, float(n)) for n, i in enumerate("abcab")]}
    baseline = SuccessorBaseline.fit(train)  # a -> b (2), b -> c, c -> a; popularity a, b, c
    test = {"s": [Event("s", i, float(n)) for n, i in enumerate("abzc")]}
    # position 0: a -> b at rank 1; position 1: b -> z (never seen) miss; position 2: z -> c (popularity fill, rank 3)
    result = evaluate(baseline, test, k=3)
    assert result["predictions"] == 3
    assert result["hr@3"] == pytest.approx(round(2 / 3, 4))
    assert result["mrr@3"] == pytest.approx(round((1 + 1 / 3) / 3, 4))


def test_replay_steps_each_session_in_order() -> None:
    baseline = SuccessorBaseline.fit({"t": [Event("t", "a", 0), Event("t", "b", 1)]})
    sessions = {"s1": [Event("s1", "a", 0), Event("s1", "b", 1)], "s2": [Event("s2", "b", 0)]}
    assert sorted((sid, pos) for sid, pos, _ in replay(baseline, sessions, 5)) == [("s1", 0), ("s1", 1), ("s2", 0)]
