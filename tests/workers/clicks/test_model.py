"""The served ranking: ``top_items`` equals a full sort by (score descending, index ascending)."""

from __future__ import annotations

import numpy as np
import pytest

from workers.clicks.model import top_items


def sorted_top(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference: every row sorted in full, best first, ties to the lower index, index 0 never."""
    scores = scores.copy()
    scores[:, 0] = -np.inf
    best = np.argsort(-scores, axis=1, kind="stable")[:, : min(k, scores.shape[1] - 1)]
    return best, np.take_along_axis(scores, best, axis=1)


@pytest.mark.parametrize("width", [2, 7, 41, 80, 1001])
@pytest.mark.parametrize("k", [1, 3, 20, 100])
def test_top_items_equals_a_full_sort(width: int, k: int) -> None:
    rng = np.random.default_rng(width * 1000 + k)
    scores = rng.random((33, width), dtype=np.float32)
    scores[5] = 0.25  # a row of ties
    scores[6, ::3] = scores[6, 1]  # ties across the bound
    scores[7] = np.round(scores[7], 1)  # ties everywhere
    want = sorted_top(scores, k)
    got = top_items(scores.copy(), k)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_top_items_never_recommends_index_0_and_ranks_nan_last() -> None:
    scores = np.random.default_rng(1).random((4, 1001), dtype=np.float32)
    scores[:, 0] = 10.0  # the unknown item scores highest: still never recommended
    scores[1, 50:60] = np.nan
    scores[2, ::2] = np.nan  # NaN column maxima: the bound is NaN, the full sort serves the row
    best, values = top_items(scores.copy(), 20)
    assert (best != 0).all()
    assert not np.isnan(values).any()
    want = sorted_top(scores, 20)
    np.testing.assert_array_equal(best, want[0])
