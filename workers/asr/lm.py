"""A character n-gram language model (Witten-Bell interpolation) and CTC prefix beam search with it.

Partials stay greedy (cheap, per chunk); a segment's final is re-decoded once over the segment's stored
log-probabilities with the beam and this model, which fixes spellings the acoustic model hears only
approximately ("the exibition" -> "the exhibition"). The model file is ``lm.txt.gz`` in the ASR model
directory: one line per context, ``context<TAB>char:count<TAB>char:count ...``.
"""

from __future__ import annotations

import gzip
import io
import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from workers.asr.text import ALPHABET, BLANK

_CHARS = ALPHABET
_UNIFORM = -math.log(len(_CHARS))


class CharLM:
    def __init__(self, order: int, counts: dict[str, dict[str, int]]) -> None:
        self.order = order
        self._counts = counts
        self._totals = {h: (sum(c.values()), len(c)) for h, c in counts.items()}
        self._cache: dict[tuple[str, str], float] = {}

    def __len__(self) -> int:
        """Contexts held."""
        return len(self._counts)

    @classmethod
    def train(cls, lines: Iterable[str], order: int = 6, min_count: int = 2) -> CharLM:
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for line in lines:
            text = " " * (order - 1) + line.strip() + " "
            for i in range(order - 1, len(text)):
                for n in range(order):
                    counts[text[i - n:i]][text[i]] += 1
        pruned = {h: {c: k for c, k in cs.items() if k >= min_count or len(h) <= 1} for h, cs in counts.items()}
        return cls(order, {h: cs for h, cs in pruned.items() if cs})

    def save(self, path: Path) -> None:
        """Byte-reproducible (no time stamp in the gzip header), so retraining leaves an unchanged LM unchanged."""
        with open(path, "wb") as raw, gzip.GzipFile("", "wb", fileobj=raw, mtime=0) as packed, \
                io.TextIOWrapper(packed, encoding="utf-8") as f:
            f.write(f"order\t{self.order}\n")
            for h in sorted(self._counts):
                f.write(h + "\t" + "\t".join(f"{c}:{k}" for c, k in sorted(self._counts[h].items())) + "\n")

    @classmethod
    def load(cls, path: Path) -> CharLM:
        counts: dict[str, dict[str, int]] = {}
        with gzip.open(path, "rt", encoding="utf-8") as f:
            order = int(f.readline().split("\t")[1])
            for line in f:
                h, *pairs = line.rstrip("\n").split("\t")
                counts[h] = {p[0]: int(p[2:]) for p in pairs}
        return cls(order, counts)

    def logp(self, history: str, char: str) -> float:
        """log P(char | the last ``order - 1`` characters of ``history``)."""
        h = (" " * (self.order - 1) + history)[-(self.order - 1):] if self.order > 1 else ""
        key = (h, char)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        p = math.exp(_UNIFORM)
        for n in range(0, len(h) + 1):  # from the empty context up to the full one
            context = h[len(h) - n:] if n else ""
            seen = self._counts.get(context)
            if seen is None:
                break
            total, distinct = self._totals[context]
            p = (seen.get(char, 0) + distinct * p) / (total + distinct)
        value = math.log(p)
        if len(self._cache) > 500_000:
            self._cache.clear()
        self._cache[key] = value
        return value


def _logsumexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def beam_search(log_probs: np.ndarray, lm: CharLM, beam: int = 8, alpha: float = 0.5, beta: float = 1.0,
                prune: float = -8.0) -> tuple[str, list[int]]:
    """CTC prefix beam search over ``log_probs`` [T, vocab] with ``alpha * log P_lm + beta`` per character.
    Returns the text and, per character, the frame it was first emitted at."""
    neg = -math.inf
    # prefix -> [log p ending in blank, log p ending in a character, lm score, frames]
    beams: dict[str, list] = {"": [0.0, neg, 0.0, []]}
    for t in range(len(log_probs)):
        row = log_probs[t]
        candidates = [int(i) for i in np.nonzero(row > prune)[0]] or [int(row.argmax())]
        nxt: dict[str, list] = {}

        def entry(prefix: str, lm_score: float, frames: list[int]) -> list:
            e = nxt.get(prefix)
            if e is None:
                e = nxt[prefix] = [neg, neg, lm_score, frames]
            return e

        for prefix, (pb, pnb, lm_score, frames) in beams.items():
            total = _logsumexp(pb, pnb)
            last = prefix[-1] if prefix else None
            for token in candidates:
                p = float(row[token])
                if token == BLANK:
                    e = entry(prefix, lm_score, frames)
                    e[0] = _logsumexp(e[0], total + p)
                    continue
                char = _CHARS[token - 1]
                if char == last:
                    e = entry(prefix, lm_score, frames)  # a repeat collapses into the same character
                    e[1] = _logsumexp(e[1], pnb + p)
                    if pb == neg:
                        continue
                    source = pb  # a blank in between: a doubled letter
                else:
                    source = total
                if char == " " and (not prefix or last == " "):
                    e = entry(prefix, lm_score, frames)  # no leading or double spaces
                    e[1] = _logsumexp(e[1], source + p)
                    continue
                extended = prefix + char
                e = nxt.get(extended)
                if e is None:
                    e = entry(extended, lm_score + alpha * lm.logp(prefix, char) + beta, frames + [t])
                e[1] = _logsumexp(e[1], source + p)
        beams = dict(sorted(nxt.items(), key=lambda kv: -(_logsumexp(kv[1][0], kv[1][1]) + kv[1][2]))[:beam])
    best = max(beams.items(), key=lambda kv: _logsumexp(kv[1][0], kv[1][1]) + kv[1][2]
               + alpha * lm.logp(kv[0], " "))  # the end of the segment closes its last word
    return best[0].rstrip(), best[1][3][: len(best[0].rstrip())]
