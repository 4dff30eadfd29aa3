"""Language models for the finals' CTC prefix beam search: characters and words.

Partials search with them as the audio comes (:class:`PrefixSearch`, carried from chunk to chunk); without
a second pass a segment's final is searched once over the segment's stored log-probabilities. They fix
spellings the acoustic model hears only approximately ("the exibition" -> "the exhibition", "fie" -> "five").

- :class:`CharLM`, a character n-gram (Witten-Bell), scores every character: ``lm.txt.gz``.
- :class:`WordLM`, a word bigram (Witten-Bell) with its vocabulary, scores every finished word, and a word
  that leaves the vocabulary pays a fixed penalty once: ``words.txt.gz``. It is optional.
- :class:`Phrases`, a stream's phrase list (Vosk's ``phrase_list``, sherpa-onnx's hotwords, Riva's word
  boosting): its finals use only the phrases' words, scored by a word bigram over the phrases.

Both files sit in the ASR model directory, one line per context, ``context<TAB>unit:count<TAB>...``.
"""

from __future__ import annotations

import functools
import gzip
import io
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from workers.asr.text import ALPHABET, BLANK, normalize
from workers.asr.settings import AsrSettings

_CHARS = ALPHABET
_UNIFORM = -math.log(len(_CHARS))


def _memoised(logp: Callable[[str, str], float]) -> Callable[[str, str], float]:
    """The beam search asks for the same few contexts over and over: remember the latest 500,000."""
    return functools.lru_cache(maxsize=500_000)(logp)


class CharLM:
    """Character n-gram, Witten-Bell interpolated down to a uniform share over the alphabet."""

    def __init__(self, order: int, counts: dict[str, dict[str, int]]) -> None:
        self.order = order
        self._counts = counts
        self._totals = {h: (sum(c.values()), len(c)) for h, c in counts.items()}
        self.context_logp = _memoised(self._uncached_logp)
        """log P(char | a context of exactly ``order - 1`` characters, see :meth:`context`)."""

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
        _save_counts(path, "order", self._counts, str(self.order))

    @classmethod
    def load(cls, path: Path) -> CharLM:
        order, counts = _load_counts(path, "order")
        return cls(int(order), counts)

    def logp(self, history: str, char: str) -> float:
        """log P(char | the last ``order - 1`` characters of ``history``)."""
        return self.context_logp(self.context(history), char)

    def context(self, history: str) -> str:
        """The ``order - 1`` characters ``history`` ends with, padded with spaces at a segment's start.
        ``context(h + c) == (context(h) + c)[1:]``: the beam search keeps each prefix's context that way."""
        n = self.order - 1
        return (" " * n + history)[len(history):]

    def _uncached_logp(self, h: str, char: str) -> float:
        p = math.exp(_UNIFORM)
        for n in range(0, len(h) + 1):  # from the empty context up to the full one
            context = h[len(h) - n:] if n else ""
            seen = self._counts.get(context)
            if seen is None:
                break
            total, distinct = self._totals[context]
            p = (seen.get(char, 0) + distinct * p) / (total + distinct)
        return math.log(p)


class WordLM:
    """Word bigram, Witten-Bell interpolated with the unigram, itself interpolated with a uniform share for
    unseen words. ``<s>`` starts and ``</s>`` ends a segment, so a lone "nine" is likely and a lone "the"
    is not. (A trigram did worse on held-out speech: docs/notes/asr-log.md.)"""

    START, END = "<s>", "</s>"

    def __init__(self, counts: dict[str, dict[str, int]]) -> None:
        self._counts = counts  # "" -> unigram counts; a word -> counts of the words after it
        unigrams = counts[""]
        self._total, self._distinct = sum(unigrams.values()), len(unigrams)
        self._totals = {h: (sum(c.values()), len(c)) for h, c in counts.items()}
        self.vocabulary = frozenset(w for w in unigrams if w != self.END)
        self.prefixes = frozenset(w[:i] for w in self.vocabulary for i in range(1, len(w) + 1))
        """Every beginning of a known word: a partial word outside it is already unknown."""
        self.logp = _memoised(self._uncached_logp)
        """log P(word | the word before it, or ``<s>``)."""

    def __len__(self) -> int:
        return len(self.vocabulary)

    @classmethod
    def train(cls, lines: Iterable[str], min_count: int = 1) -> WordLM:
        """Every word is kept; a bigram seen fewer than ``min_count`` times is left to the unigram (by default
        none: keeping them all scored better on the development clips)."""
        counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for line in lines:
            words = [cls.START, *line.split(), cls.END]
            for before, word in zip(words, words[1:]):
                counts[""][word] += 1
                counts[before][word] += 1
        pruned = {h: {w: k for w, k in ws.items() if k >= min_count or not h} for h, ws in counts.items()}
        return cls({h: ws for h, ws in pruned.items() if ws})

    def save(self, path: Path) -> None:
        _save_counts(path, "words", self._counts)

    @classmethod
    def load(cls, path: Path) -> WordLM:
        return cls(_load_counts(path, "words")[1])

    def _uncached_logp(self, before: str, word: str) -> float:
        p = (self._counts[""].get(word, 0) + self._distinct / (self._distinct + 1)) / (self._total + self._distinct)
        seen = self._counts.get(before) if before else None
        if seen is not None:
            total, distinct = self._totals[before]
            p = (seen.get(word, 0) + distinct * p) / (total + distinct)
        return math.log(p)


def _save_counts(path: Path, kind: str, counts: dict[str, dict[str, int]], header: str = "") -> None:
    """Byte-reproducible (no time stamp in the gzip header), so retraining leaves an unchanged LM unchanged."""
    with open(path, "wb") as raw, gzip.GzipFile("", "wb", fileobj=raw, mtime=0) as packed, \
            io.TextIOWrapper(packed, encoding="utf-8") as f:
        f.write(f"{kind}\t{header}\n")
        for h in sorted(counts):
            f.write(h + "\t" + "\t".join(f"{u}:{k}" for u, k in sorted(counts[h].items())) + "\n")


def _load_counts(path: Path, kind: str) -> tuple[str, dict[str, dict[str, int]]]:
    counts: dict[str, dict[str, int]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        found, header = f.readline().rstrip("\n").split("\t")
        if found != kind:
            raise ValueError(f"{path}: a {found!r} model, not {kind!r}")
        for line in f:
            h, *pairs = line.rstrip("\n").split("\t")
            counts[h] = {u: int(k) for u, _, k in (p.rpartition(":") for p in pairs)}
    return header, counts


@dataclass(frozen=True, slots=True)
class Phrases:
    """What a stream may say, as its client lists it (``["yes", "no", "talk to an agent"]``): its finals are
    searched with only these phrases' words, a word bigram over the phrases ranking them. With
    :data:`Phrases.UNKNOWN` in the list another word may be heard, and is reported as ``[unk]`` (as
    Vosk does); without it every final is made of the phrases' words, or is empty.

    Why: a client that knows the answer is a digit, a yes/no or a menu item gets far better accuracy
    than open dictation (the unseen FSDD speaker's digits: README), and no "the" where "three" was said."""

    UNKNOWN = "[unk]"
    MAX_PHRASES = 1000
    MAX_CHARS = 100

    phrases: tuple[str, ...]
    open: bool = False

    @classmethod
    def parse(cls, items: Iterable[str]) -> Phrases:
        """Phrases normalised as transcripts are (lower case, a-z, ' and spaces); ValueError says what is wrong."""
        items = list(items)
        if not items:
            raise ValueError("an empty phrase list")
        if len(items) > cls.MAX_PHRASES:
            raise ValueError(f"{len(items)} phrases > {cls.MAX_PHRASES}")
        phrases, open_ = [], False
        for item in items:
            if not isinstance(item, str):
                raise ValueError(f"a phrase must be a string, got {type(item).__name__}")
            if item.strip().lower() == cls.UNKNOWN:
                open_ = True
                continue
            text = normalize(item)
            if not text or len(text) > cls.MAX_CHARS:
                raise ValueError(f"phrase {item[:40]!r} has no word, or more than {cls.MAX_CHARS} characters")
            phrases.append(text)
        if not phrases:
            raise ValueError(f"no phrase besides {cls.UNKNOWN}")
        return cls(tuple(dict.fromkeys(phrases)), open_)

    @property
    def vocabulary(self) -> frozenset[str]:
        return frozenset(w for p in self.phrases for w in p.split())

    def words(self) -> WordLM:
        return _phrase_words(self.phrases)


@functools.lru_cache(maxsize=256)
def _phrase_words(phrases: tuple[str, ...]) -> WordLM:
    """Streams share a few phrase lists (a digit prompt, a menu): each list's bigram is built once."""
    return WordLM.train(phrases)


@dataclass(frozen=True, slots=True)
class SearchSettings:
    """The finals' beam search (see :func:`beam_search` for what each weight scales)."""

    beam: int
    lm_weight: float
    lm_bonus: float
    prune: float
    word_weight: float = 0.0
    unknown_word: float = 0.0
    margin: float = math.inf
    phrase_prune: float = -10.0
    """``prune`` of a closed phrase list's search, which has no ``margin`` either."""

    @classmethod
    def of(cls, asr: AsrSettings) -> SearchSettings:
        return cls(asr.beam, asr.lm_weight, asr.lm_bonus, asr.beam_prune, asr.word_weight,
                   asr.unknown_word_penalty, asr.search_margin, asr.phrase_prune)


GREEDY = SearchSettings(beam=0, lm_weight=0.0, lm_bonus=0.0, prune=0.0)
"""No beam search: finals keep their greedy text."""


@dataclass(frozen=True, slots=True)
class Searched:
    """One segment's beam search: the text, the frame each character was first emitted at."""

    text: str
    frames: list[int]


@dataclass(frozen=True)
class LanguageModels:
    """What an ASR model directory ships for the finals' search: the character LM and, if present, the
    word LM."""

    chars: CharLM
    words: WordLM | None

    @classmethod
    def load(cls, model_dir: Path) -> LanguageModels | None:
        """None when the directory has no ``lm.txt.gz`` (finals are then greedy)."""
        chars, words = model_dir / "lm.txt.gz", model_dir / "words.txt.gz"
        if not chars.exists():
            return None
        return cls(CharLM.load(chars), WordLM.load(words) if words.exists() else None)

    def search(self, log_probs: np.ndarray, settings: SearchSettings, phrases: Phrases | None = None) -> Searched:
        """The final's text; with ``phrases``, only their words (see :class:`Phrases`)."""
        search = self.prefix_search(settings, phrases)
        search.advance(log_probs.astype(np.float32))
        return Searched(*search.result())

    def prefix_search(self, settings: SearchSettings, phrases: Phrases | None = None) -> PrefixSearch:
        """A search with these models and ``settings``, to be fed frames; with ``phrases``, only their words."""
        words, unknown = self.words if settings.word_weight else None, settings.unknown_word
        if phrases is not None:
            words, unknown = phrases.words(), settings.unknown_word if phrases.open else -math.inf
            if not phrases.open:  # few words to try: no margin, and a weak onset letter is still tried
                settings = replace(settings, prune=min(settings.prune, settings.phrase_prune), margin=math.inf)
        return PrefixSearch(self.chars, settings.beam, settings.lm_weight, settings.lm_bonus, settings.prune, words,
                            settings.word_weight, unknown, settings.margin)


def _logsumexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    if a > b:
        return a + math.log(1.0 + math.exp(b - a))
    return b + math.log(math.exp(a - b) + 1.0)


def _last_word(prefix: str) -> tuple[str, str]:
    """(the word before the last, or ``<s>``; the last word) of a prefix that ends inside or after a word."""
    parts = prefix.rstrip(" ").rsplit(" ", 2)
    return (parts[-2] if len(parts) > 1 else WordLM.START), parts[-1]


class _Frame:
    """What one frame offers the search: the tokens it tries, each above ``prune`` (or the frame's best
    token when none is), in token order, as (log-probability, character or None for the blank)."""

    __slots__ = ("candidates", "best_char", "_staying")

    def __init__(self, candidates: list[tuple[float, str | None]]) -> None:
        self.candidates = candidates
        self.best_char = max((p for p, char in candidates if char is not None), default=-math.inf)
        self._staying: dict[str | None, list[tuple[float, str | None]]] = {}

    def staying(self, last: str | None) -> list[tuple[float, str | None]]:
        """The candidates that leave a prefix ending in ``last`` as it is: the blank, and ``last`` again."""
        found = self._staying.get(last)
        if found is None:
            found = self._staying[last] = [(p, char) for p, char in self.candidates if char is None or char == last]
        return found


def _frames(log_probs: np.ndarray, prune: float) -> Iterator[_Frame]:
    """The search's view of each frame of ``log_probs`` [T, vocab]."""
    rows = log_probs.tolist()  # Python floats: a numpy scalar per lookup costs more than the arithmetic on it
    above = log_probs > prune
    chars: list[str | None] = [None, *_CHARS]  # token i + 1 is the character _CHARS[i]
    assert chars[BLANK] is None
    for t, row in enumerate(rows):
        tokens = np.flatnonzero(above[t]).tolist() or [int(log_probs[t].argmax())]
        yield _Frame([(row[i], chars[i]) for i in tokens])


class PrefixSearch:
    """CTC prefix beam search fed a segment's frames block by block (partials search as the audio comes; a
    final searches its whole segment at once: :func:`beam_search`). Feeding the frames in any blocks finds
    what one call over all of them finds.

    A prefix scores its CTC probability plus ``alpha * log P_char + beta`` per character and, with ``words``,
    ``gamma * log P_word`` per finished word and ``unknown`` once for a word outside the vocabulary (``-inf``:
    the vocabulary is closed, no other word is tried). Per frame, characters below ``prune`` are not tried,
    nor extensions scoring ``margin`` below the best prefix of the frame before.

    It is every final's cost, and every partial's with a partial beam (pure Python), so it is written for
    speed: the hottest log-sum-exps are spelled out in place, each prefix carries its character LM context,
    its last word and its frames (as a linked list), and a prefix the margin rules out tries only the blank
    and its last character. It finds bit for bit what the plain search finds
    (``tests/workers/asr/reference_search.py``)."""

    __slots__ = ("lm", "beam", "alpha", "beta", "prune", "words", "gamma", "unknown", "margin", "beams",
                 "best_score", "frames_seen")

    def __init__(self, lm: CharLM, beam: int = 8, alpha: float = 0.5, beta: float = 1.0, prune: float = -8.0,
                 words: WordLM | None = None, gamma: float = 0.0, unknown: float = 0.0,
                 margin: float = math.inf) -> None:
        self.lm, self.beam, self.alpha, self.beta, self.prune = lm, beam, alpha, beta, prune
        self.words, self.gamma, self.unknown, self.margin = words, gamma, unknown, margin
        # prefix -> [log p ending in blank, log p ending in a character, LM score, frames, the char LM's
        # context, the word the prefix ends in ("" after a space)]; frames: the frame each character was
        # emitted at, as a linked list (frame, frames before) from the last. Kept best first.
        self.beams: dict[str, list] = {"": [0.0, -math.inf, 0.0, None, lm.context(""), ""]}
        self.best_score = 0.0
        self.frames_seen = 0

    def _word_score(self, prefix: str) -> float:
        """Score of the word ``prefix`` ends with (``prefix`` has no trailing space)."""
        words = self.words
        assert words is not None
        before, word = _last_word(prefix)
        if self.unknown == -math.inf and word not in words.vocabulary:
            return -math.inf  # the beginning of a known word, not a word
        return self.gamma * words.logp(before, word)

    def advance(self, log_probs: np.ndarray) -> None:
        """Search on through the next frames ``log_probs`` [T, vocab]."""
        neg = -math.inf
        log, exp = math.log, math.exp
        words, unknown, alpha, beta, margin = self.words, self.unknown, self.alpha, self.beta, self.margin
        known = words.prefixes if words is not None else frozenset()
        context_logp = self.lm.context_logp
        word_score = self._word_score
        beams, best_score, beam = self.beams, self.best_score, self.beam
        for t, frame in enumerate(_frames(log_probs, self.prune), self.frames_seen):
            floor = best_score - margin
            nxt: dict[str, list] = {}
            get = nxt.get
            for prefix, (pb, pnb, lm_score, frames, context, word) in beams.items():
                if pb == neg:
                    total = pnb
                elif pnb == neg:
                    total = pb
                elif pb > pnb:
                    total = pb + log(1.0 + exp(pnb - pb))
                else:
                    total = pnb + log(exp(pb - pnb) + 1.0)
                last = prefix[-1] if prefix else None
                candidates = frame.candidates
                if total + frame.best_char + lm_score + beta < floor:
                    # no extension of it can pass the margin check below (that for the best character fails):
                    # skip straight to the candidates that can still do something, as the loop would
                    candidates = frame.staying(last)
                for p, char in candidates:
                    if char is None:  # the blank
                        e, x = get(prefix), total + p
                        if e is None:
                            nxt[prefix] = [x, neg, lm_score, frames, context, word]
                        else:
                            e[0] = _logsumexp(e[0], x)
                        continue
                    if char == last:
                        e, x = get(prefix), pnb + p  # a repeat collapses into the same character
                        if e is None:
                            nxt[prefix] = [neg, x, lm_score, frames, context, word]
                        else:
                            e[1] = _logsumexp(e[1], x)
                        if pb == neg:
                            continue
                        source = pb  # a blank in between: a doubled letter
                    else:
                        source = total
                    if source + p + lm_score + beta < floor:
                        continue  # cannot come near the best prefix: the LM only lowers it further
                    x = source + p
                    if char == " " and (not prefix or last == " "):
                        e = get(prefix)  # no leading or double spaces
                        if e is None:
                            nxt[prefix] = [neg, x, lm_score, frames, context, word]
                        else:
                            e[1] = _logsumexp(e[1], x)
                        continue
                    extended = prefix + char
                    e = get(extended)
                    if e is not None:
                        e[1] = _logsumexp(e[1], x)
                        continue
                    score = lm_score + alpha * context_logp(context, char) + beta
                    grown = "" if char == " " else word + char
                    if words is not None:
                        if char == " ":
                            score += word_score(prefix)
                        elif grown not in known and (not word or word in known):
                            score += unknown  # the word just left the vocabulary
                    if score != neg:
                        nxt[extended] = [neg, x, score, (t, frames), (context + char)[1:], grown]
            if not nxt:  # no blank above ``prune``, and no prefix may take the letter heard (a closed vocabulary)
                continue  # every prefix would pay the same for this frame: skip it
            entries = list(nxt.items())
            ranks = [-((pb if pnb == neg else pnb if pb == neg else pb + log(1.0 + exp(pnb - pb)) if pb > pnb
                        else pnb + log(exp(pb - pnb) + 1.0)) + lm_score) for pb, pnb, lm_score, _, _, _ in nxt.values()]
            kept = sorted(range(len(ranks)), key=ranks.__getitem__)[:beam]  # stable: ties keep their order
            beams = {entries[i][0]: entries[i][1] for i in kept}
            best_score = -ranks[kept[0]]
        self.beams, self.best_score = beams, best_score
        self.frames_seen += len(log_probs)

    def result(self) -> tuple[str, list[int]]:
        """The segment's text once it ends (it closes the last word, and the sentence), and per character
        the frame it was first emitted at."""
        neg, lm, words, alpha, gamma = -math.inf, self.lm, self.words, self.alpha, self.gamma

        def closed(item: tuple[str, list]) -> float:
            prefix, (pb, pnb, lm_score, *_) = item
            score = _logsumexp(pb, pnb) + lm_score + alpha * lm.logp(prefix, " ")
            text = prefix.rstrip(" ")
            if words is not None and text:
                if not prefix.endswith(" "):
                    score += self._word_score(text)
                score += gamma * words.logp(_last_word(text)[1], WordLM.END)
            return score

        best = max(self.beams.items(), key=closed)
        if closed(best) == neg:
            return "", []  # every prefix ends inside a word of a closed vocabulary
        return self._text_and_frames(*best)

    @staticmethod
    def _text_and_frames(prefix: str, entry: list) -> tuple[str, list[int]]:
        frames, node = [], entry[3]
        while node is not None:
            frame, node = node
            frames.append(frame)
        text = prefix.rstrip()
        return text, frames[::-1][: len(text)]


def beam_search(log_probs: np.ndarray, lm: CharLM, beam: int = 8, alpha: float = 0.5, beta: float = 1.0,
                prune: float = -8.0, words: WordLM | None = None, gamma: float = 0.0, unknown: float = 0.0,
                margin: float = math.inf) -> tuple[str, list[int]]:
    """:class:`PrefixSearch` over a whole segment's ``log_probs`` [T, vocab]: its text and, per character, the
    frame it was first emitted at."""
    search = PrefixSearch(lm, beam, alpha, beta, prune, words, gamma, unknown, margin)
    search.advance(log_probs)
    return search.result()
