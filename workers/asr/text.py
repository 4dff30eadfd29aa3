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


_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10 ** 9, "billion"), (10 ** 6, "million"), (1000, "thousand"), (100, "hundred"))
_ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
             "nine": "ninth", "twelve": "twelfth"}
_NUMBER = re.compile(r"(?P<cur>[$£€])?(?P<num>\d[\d,]*(?:\.\d+)?)(?P<suffix>st|nd|rd|th|s|%)?")


def number_words(n: int) -> str:
    """``1963`` -> "one thousand nine hundred sixty three" (see :func:`spoken` for how years are read)."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    for size, name in _SCALES:
        if n >= size:
            rest = n % size
            return f"{number_words(n // size)} {name}" + (f" {number_words(rest)}" if rest else "")
    raise AssertionError(n)


def _read_number(match: re.Match[str]) -> str:
    digits, suffix, currency = match["num"].replace(",", ""), match["suffix"] or "", match["cur"]
    whole, _, fraction = digits.partition(".")
    value = int(whole)
    if 1100 <= value <= 2099 and not fraction and not currency and "," not in match["num"] and value % 100 and \
            not 2000 <= value <= 2009:
        words = f"{number_words(value // 100)} {number_words(value % 100)}"  # years: nineteen sixty three
        if value % 100 < 10:
            words = f"{number_words(value // 100)} oh {number_words(value % 100)}"
    else:
        words = number_words(value)
    if fraction:
        words += " point " + " ".join(_ONES[int(d)] for d in fraction)
    if suffix in ("st", "nd", "rd", "th"):
        head, _, last = words.rpartition(" ")
        last = _ORDINALS.get(last, (last[:-1] + "ieth") if last.endswith("y") else last + "th")
        words = f"{head} {last}".strip()
    elif suffix == "s":
        words = words[:-1] + "ies" if words.endswith("y") else words + "s"
    elif suffix == "%":
        words += " percent"
    if currency:
        words += {"$": " dollars", "£": " pounds", "€": " euros"}[currency]
    return f" {words} "


def spoken(text: str) -> str:
    """Written text (a Whisper final's ``display``: "It's 5 past 10, 1963.") as the alphabet's spoken words
    ("it's five past ten nineteen sixty three"): numbers, ordinals, years, currency and percentages read
    out, then :func:`normalize`. Hyphens and slashes break words."""
    text = re.sub(r"(\d):(\d\d)\b", lambda m: f"{m[1]} {int(m[2]) if m[2] != '00' else ''}", text)
    return normalize(_NUMBER.sub(_read_number, text.replace("&", " and ")))
