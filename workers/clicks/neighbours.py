"""Count and neighbourhood scorers for next-item prediction, computed for a whole batch of sessions at once.

These are the strong simple baselines of session-based recommendation (Ludewig & Jannach, 2018; Ludewig
et al., 2021), and the count signals the served hybrid blends with the GRU:

* ``popularity``: how often each item was seen in training;
* ``successor``: how often each item followed the session's last item;
* ``item_knn``: cosine similarity of items by the sessions they share, from the last item;
* ``sknn``: the k training sessions most similar to the current one (items in common), each voting for
  its items with its similarity;
* ``vsknn``: the same with the current session's items weighted by recency (linear decay, the last item
  weighs 1) and by rarity (IDF), as V-SKNN does;
* ``cooccurrence``: V-SKNN without choosing neighbours: every sampled session votes with its similarity,
  which sums to one item x item matrix of co-occurrence counts, computed at training time. A sparse
  product per batch instead of a neighbourhood search per event, so the served blend can afford it.

Every scorer maps item histories (item indices, 1-based, 0 = unknown; oldest first) to a dense score row
over the item index; all share one :class:`Counts` fitted on the training sessions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np
from scipy import sparse

SIGNALS = ("popularity", "successor", "item_knn", "sknn", "vsknn", "cooccurrence")
NEIGHBOURS = 100
"""Sessions that vote in (V-)SKNN: the most similar ones."""
SAMPLE = 200
"""Candidate neighbours per item of the current session: its most recent training sessions (V-SKNN's sample)."""
COOCCURRING = 200
"""Items kept per row of the co-occurrence matrix (it stays sparse for large catalogues)."""
HISTORY = 20
"""Most recent items of a session that (V-)SKNN compares."""
DENSE_WIDTH = 4096
"""Catalogues up to this many items keep the item x item matrices dense as well (64 MB each at most): a batch's
rows are then a gather and its co-occurrence scores one sparse x dense product, about 6x cheaper per event
than sparse x sparse and a sparse result made dense (docs/benchmarks.md, the hot path)."""


@dataclass
class Counts:
    """What the count scorers know about the training sessions, over an item index of ``n_items`` (+1 for 0)."""

    popularity: np.ndarray  # [n_items + 1]
    successors: sparse.csr_matrix  # [n_items + 1, n_items + 1]: row a, column b = times b followed a
    sessions: sparse.csr_matrix  # [n_sessions, n_items + 1], 1 where the session holds the item
    postings: sparse.csr_matrix  # [n_items + 1, n_sessions]: each item's most recent SAMPLE sessions
    cooccurrence: sparse.csr_matrix  # [n_items + 1, n_items + 1]: postings @ sessions, each row's top COOCCURRING
    item_similarity: sparse.csr_matrix  # [n_items + 1, n_items + 1] cosine over sessions
    idf: np.ndarray  # [n_items + 1]
    _dense_cache: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def fit(cls, histories: Iterable[list[int]], n_items: int, max_sessions: int = 50_000) -> Counts:
        """``histories``: training sessions as item indices (oldest session first; only the most recent
        ``max_sessions`` are kept as neighbours, as SKNN implementations sample recent sessions)."""
        histories = [h for h in histories if h]
        width = n_items + 1
        popularity = np.zeros(width, np.float64)
        pairs_a, pairs_b = [], []
        for items in histories:
            np.add.at(popularity, items, 1)
            known = [(a, b) for a, b in zip(items, items[1:]) if a and b]  # 0: an item outside the index
            pairs_a += [a for a, _ in known]
            pairs_b += [b for _, b in known]
        popularity[0] = 0
        successors = sparse.csr_matrix((np.ones(len(pairs_a)), (pairs_a, pairs_b)), shape=(width, width))
        recent = [sorted(set(items) - {0}) for items in histories[-max_sessions:]]
        rows = [r for r, items in enumerate(recent) for _ in items]
        cols = [i for items in recent for i in items]
        matrix = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(recent), width))
        return cls.from_matrices(popularity, successors, matrix)

    @classmethod
    def from_matrices(cls, popularity: np.ndarray, successors: sparse.csr_matrix, matrix: sparse.csr_matrix) -> Counts:
        matrix = matrix.tocsr()
        degree = np.asarray(matrix.sum(axis=0)).ravel()
        co = (matrix.T @ matrix).tocsr().astype(np.float32)
        norm = np.sqrt(np.maximum(degree, 1)).astype(np.float32)
        co = sparse.diags(1 / norm) @ co @ sparse.diags(1 / norm)
        co.setdiag(0)
        co.eliminate_zeros()
        idf = np.log((matrix.shape[0] + 1) / (degree + 1)).astype(np.float32)
        postings = matrix.T.tocsr()  # rows: items; columns: sessions, oldest first
        postings.sort_indices()
        keep = np.zeros(postings.nnz, bool)
        for item in range(postings.shape[0]):  # the last SAMPLE entries of each row are its most recent sessions
            start, end = postings.indptr[item], postings.indptr[item + 1]
            keep[max(start, end - SAMPLE):end] = True
        postings.data = np.where(keep, postings.data, 0).astype(np.float32)
        postings.eliminate_zeros()
        cooccurrence = _top_per_row((postings @ matrix).tocsr(), COOCCURRING)
        return cls(popularity.astype(np.float32), successors.tocsr().astype(np.float32), matrix, postings,
                   cooccurrence, co.tocsr(), idf)

    @property
    def width(self) -> int:
        return len(self.popularity)

    def save(self, path: Path) -> None:
        sparse.save_npz(path.with_suffix(".successors.npz"), self.successors)
        sparse.save_npz(path.with_suffix(".sessions.npz"), self.sessions)
        np.save(path.with_suffix(".popularity.npy"), self.popularity)

    @classmethod
    def load(cls, path: Path) -> Counts:
        return cls.from_matrices(np.load(path.with_suffix(".popularity.npy")),
                                 sparse.load_npz(path.with_suffix(".successors.npz")),
                                 sparse.load_npz(path.with_suffix(".sessions.npz")))

    def scores(self, signal: str, histories: list[list[int]]) -> np.ndarray:
        """``[len(histories), width]`` scores of ``signal`` (one of :data:`SIGNALS`); rows of empty histories are 0."""
        if signal == "popularity":
            return np.broadcast_to(self.popularity, (len(histories), self.width)).copy()
        last = np.array([h[-1] if h else 0 for h in histories])
        if signal == "successor":
            return self._rows("successors", last)
        if signal == "item_knn":
            return self._rows("item_similarity", last)
        if signal in ("sknn", "vsknn"):
            return self._session_knn(histories, weighted=signal == "vsknn")
        if signal == "cooccurrence":
            query = self._query(histories, idf=True)
            dense = self._dense("cooccurrence")
            return query @ dense if dense is not None else (query @ self.cooccurrence).toarray()
        raise ValueError(f"unknown signal {signal!r}; known: {', '.join(SIGNALS)}")

    def _dense(self, name: str) -> np.ndarray | None:
        """Item x item matrix ``name`` as a dense array, made once; None for catalogues over :data:`DENSE_WIDTH`."""
        if self.width > DENSE_WIDTH:
            return None
        if name not in self._dense_cache:
            self._dense_cache[name] = np.ascontiguousarray(getattr(self, name).toarray(), dtype=np.float32)
        return self._dense_cache[name]

    def _rows(self, name: str, rows: np.ndarray) -> np.ndarray:
        dense = self._dense(name)
        return dense[rows] if dense is not None else getattr(self, name)[rows].toarray()

    def _query(self, histories: list[list[int]], idf: bool) -> sparse.csr_matrix:
        """The sessions' recent items as rows: position p (1 = oldest) of n weighs p / n (times the item's
        rarity with ``idf``); an item seen twice adds up."""
        recent = [h[-HISTORY:] for h in histories]
        lengths = np.array([len(h) for h in recent], np.int64)
        rows = np.repeat(np.arange(len(recent)), lengths)
        cols = np.fromiter(chain.from_iterable(recent), np.int64, int(lengths.sum()))  # 2.5x a generator's speed
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        positions = (np.arange(len(cols)) - starts + 1) / np.repeat(lengths, lengths)
        values = (positions * self.idf[cols] if idf else positions).astype(np.float32)
        known = cols > 0
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows[known], minlength=len(recent)))])
        # built as CSR directly: the (row, col) form goes through COO, a third of this function's time
        query = sparse.csr_matrix((values[known], cols[known], indptr), shape=(len(recent), self.width))
        query.sum_duplicates()
        return query

    def _session_knn(self, histories: list[list[int]], weighted: bool) -> np.ndarray:
        query = self._query(histories, idf=weighted)
        if not weighted:
            query.data[:] = 1.0
        similarity = _top_per_row(query @ self.postings, NEIGHBOURS)  # [batch, sessions]: the most similar vote
        return (similarity @ self.sessions).toarray()


def _top_per_row(matrix: sparse.csr_matrix, keep: int) -> sparse.csr_matrix:
    """``matrix`` with only each row's ``keep`` largest entries."""
    matrix = matrix.tocsr().astype(np.float32)
    counts = np.diff(matrix.indptr)
    if counts.max(initial=0) > keep:
        row = np.repeat(np.arange(len(counts)), counts)
        order = np.lexsort((-matrix.data, row))
        rank = np.arange(len(order)) - matrix.indptr[row[order]]
        matrix.data[order[rank >= keep]] = 0
        matrix.eliminate_zeros()
    return matrix


def normalised(scores: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (a row of zeros stays zero), so signals of different scales can be blended."""
    totals = scores.sum(axis=1, keepdims=True)
    return np.divide(scores, totals, out=np.zeros_like(scores, dtype=np.float32), where=totals > 0)


def normalised_in_place(scores: np.ndarray, weight: float = 1.0) -> np.ndarray:
    """``weight * normalised(scores)`` computed in ``scores`` itself (same float32 operations in the same order), for
    the serving path's fresh [batch, items] rows: no new arrays of that size. Scores are counts, never negative,
    so a row summing to zero is all zeros and stays so."""
    totals = scores.sum(axis=1, keepdims=True)
    np.divide(scores, totals, out=scores, where=totals > 0)
    scores *= np.float32(weight)
    return scores
