"""The model's alphabet and the text normalisation references are compared in (lower case, a-z, ', space)."""

from __future__ import annotations

import re
from collections.abc import Sequence

BLANK = 0
ALPHABET = " 'abcdefghijklmnopqrstuvwxyz"
"""Token ``i + 1`` is ``ALPHABET[i]``; token 0 is the CTC blank."""
VOCAB_SIZE = len(ALPHABET) + 1
_INDEX = {c: i + 1 for i, c in enumerate(ALPHABET)}
_OUTSIDE = re.compile(r"[^a-z' ]+")
_SPACES = re.compile(r" +")


def normalize(text: str) -> str:
    """Lower case; anything outside the alphabet (punctuation, digits) becomes a word break."""
    text = _OUTSIDE.sub(" ", text.lower().replace("’", "'"))
    return _SPACES.sub(" ", text).strip()


def encode(text: str) -> list[int]:
    return [_INDEX[c] for c in normalize(text)]


def decode(tokens: list[int]) -> str:
    return "".join(ALPHABET[t - 1] for t in tokens if t != BLANK)


def edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Levenshtein distance (substitutions, insertions, deletions all cost 1)."""
    previous = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        current = [i] + [0] * len(hypothesis)
        for j, h in enumerate(hypothesis, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1]


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word edit distance, reference word count) after normalisation; WER = sum of first / sum of second."""
    ref = normalize(reference).split()
    return edit_distance(ref, normalize(hypothesis).split()), len(ref)
