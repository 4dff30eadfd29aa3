"""The count and neighbourhood signals on sessions small enough to check by hand, and the hybrid's blend."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.clicks_blend import _hits
from workers.clicks.events import Event
from workers.clicks.model import CountScorer
from workers.clicks.neighbours import Counts, normalised

# items 1..5; training sessions, oldest first
SESSIONS = [[1, 2, 3], [1, 2, 4], [2, 3], [4, 5], [1, 5]]


@pytest.fixture(scope="module")
def counts() -> Counts:
    return Counts.fit(SESSIONS, n_items=5)


def test_popularity_and_successors_count_what_happened(counts: Counts) -> None:
    assert counts.popularity.tolist() == [0, 3, 3, 2, 2, 2]
    successor = counts.scores("successor", [[2]]).ravel()
    assert successor.tolist() == [0, 0, 0, 2, 1, 0]  # after 2: 3 twice, 4 once


def test_item_knn_is_a_symmetric_cosine_without_self_similarity(counts: Counts) -> None:
    similarity = counts.item_similarity.toarray()
    np.testing.assert_allclose(similarity, similarity.T)
    assert np.all(np.diag(similarity) == 0)
    # items 1 and 2 share 2 sessions; each is in 3: cosine 2 / 3
    assert similarity[1, 2] == pytest.approx(2 / 3)
    assert counts.scores("item_knn", [[1]])[0, 2] == pytest.approx(2 / 3)


def test_session_knn_votes_with_the_sessions_that_share_items(counts: Counts) -> None:
    scores = counts.scores("sknn", [[1, 2]]).ravel()
    # sessions {1,2,3} and {1,2,4} share 2 items, {2,3} and {1,5} one: 3 gets 2 + 1, 4 gets 2, 5 gets 1
    assert scores[3] == pytest.approx(3) and scores[4] == pytest.approx(2) and scores[5] == pytest.approx(1)


def test_vsknn_weighs_the_recent_item_more(counts: Counts) -> None:
    # history [3, 5]: 2 is voted by the two sessions holding 3, 4 by one of those holding 5 (the recent item)
    plain = counts.scores("sknn", [[3, 5]]).ravel()
    recent = counts.scores("vsknn", [[3, 5]]).ravel()
    assert plain[4] / plain[2] == pytest.approx(0.5)
    assert recent[4] / recent[2] == pytest.approx(1.0)  # 5's sessions weigh twice as much as 3's


def test_cooccurrence_is_vsknn_with_every_sampled_session_voting(counts: Counts) -> None:
    # history [3, 5]: weights 1/2 * idf(3) and 1 * idf(5); every session holding 3 or 5 votes with its similarity
    weights = {3: 0.5 * counts.idf[3], 5: 1.0 * counts.idf[5]}
    expected = np.zeros(6)
    for session in SESSIONS:
        similarity = sum(w for item, w in weights.items() if item in session)
        for item in set(session):
            expected[item] += similarity
    np.testing.assert_allclose(counts.scores("cooccurrence", [[3, 5]]).ravel(), expected, rtol=1e-6)


def test_rows_normalise_to_one_and_empty_rows_stay_empty() -> None:
    rows = normalised(np.array([[0, 2, 2], [0, 0, 0]], np.float32))
    assert rows.tolist() == [[0, 0.5, 0.5], [0, 0, 0]]


def test_counts_save_and_load_unchanged(counts: Counts, tmp_path: Path) -> None:
    counts.save(tmp_path / "counts")
    loaded = Counts.load(tmp_path / "counts")
    for signal in ("successor", "item_knn", "vsknn"):
        np.testing.assert_allclose(loaded.scores(signal, [[1, 2]]), counts.scores(signal, [[1, 2]]))


def test_a_baseline_scorer_steps_like_the_model_and_breaks_ties_by_popularity(counts: Counts) -> None:
    scorer = CountScorer(counts, ["a", "b", "c", "d", "e"], "successor")
    state = scorer.new_state()
    [prediction] = scorer.step([state], [Event("s", "b", 0.0)], k=3)
    ranked = [item for item, _ in prediction.next_items]
    assert ranked[:2] == ["c", "d"] and ranked[2] in {"a", "b"}  # 2 then 1 follow-ups; then the most popular
    [prediction] = scorer.step([state], [Event("s", "never-seen", 1.0)], k=2)
    assert not prediction.known_item and [item for item, _ in prediction.next_items] == ["a", "b"]


def test_ranks_count_ties_halfway_and_unknown_targets_miss() -> None:
    scores = np.array([[0, 0.5, 0.5, 0.2], [0, 0.5, 0.5, 0.2]])
    hit, reciprocal = _hits(scores, np.array([2, 0]))
    assert hit.tolist() == [True, False]
    assert reciprocal[0] == pytest.approx(1 / 1.5)
