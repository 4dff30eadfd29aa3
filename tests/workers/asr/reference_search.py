"""The CTC prefix beam search written plainly, as ``workers.asr.lm.beam_search`` was before it was tuned
for speed: the tuned search must find the same text and frames, bit for bit (``test_lm``)."""

import math

import numpy as np

from workers.asr.lm import CharLM, WordLM, _last_word
from workers.asr.text import ALPHABET, BLANK


def _logsumexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    m = max(a, b)
    return m + math.log(math.exp(a - m) + math.exp(b - m))


def reference_beam_search(log_probs: np.ndarray, lm: CharLM, beam: int, alpha: float, beta: float, prune: float,
                          words: WordLM | None, gamma: float, unknown: float,
                          margin: float) -> tuple[str, list[int]]:
    neg = -math.inf
    known = words.prefixes if words is not None else frozenset()
    closed_vocabulary = words is not None and unknown == neg

    def word_score(prefix: str) -> float:
        before, word = _last_word(prefix)
        if closed_vocabulary and word not in words.vocabulary:
            return neg
        return gamma * words.logp(before, word)

    beams: dict[str, list] = {"": [0.0, neg, 0.0, []]}  # prefix -> [p blank, p char, LM score, frames]
    best_score = 0.0
    for t in range(len(log_probs)):
        row = log_probs[t]
        candidates = [int(i) for i in np.nonzero(row > prune)[0]] or [int(row.argmax())]
        floor = best_score - margin
        nxt: dict[str, list] = {}

        def entry(prefix: str, lm_score: float, frames: list[int]) -> list:
            if prefix not in nxt:
                nxt[prefix] = [neg, neg, lm_score, frames]
            return nxt[prefix]

        for prefix, (pb, pnb, lm_score, frames) in beams.items():
            total = _logsumexp(pb, pnb)
            last = prefix[-1] if prefix else None
            for token in candidates:
                p = float(row[token])
                if token == BLANK:
                    e = entry(prefix, lm_score, frames)
                    e[0] = _logsumexp(e[0], total + p)
                    continue
                char = ALPHABET[token - 1]
                if char == last:
                    e = entry(prefix, lm_score, frames)
                    e[1] = _logsumexp(e[1], pnb + p)
                    if pb == neg:
                        continue
                    source = pb
                else:
                    source = total
                if source + p + lm_score + beta < floor:
                    continue
                if char == " " and (not prefix or last == " "):
                    e = entry(prefix, lm_score, frames)
                    e[1] = _logsumexp(e[1], source + p)
                    continue
                extended = prefix + char
                if extended not in nxt:
                    score = lm_score + alpha * lm.logp(prefix, char) + beta
                    if words is not None:
                        if char == " ":
                            score += word_score(prefix)
                        else:
                            partial = extended[extended.rfind(" ") + 1:]
                            if partial not in known and (len(partial) == 1 or partial[:-1] in known):
                                score += unknown
                    if score == neg:
                        continue
                    entry(extended, score, frames + [t])
                e = nxt[extended]
                e[1] = _logsumexp(e[1], source + p)
        if not nxt:
            continue
        ranked = sorted(nxt.items(), key=lambda kv: -(_logsumexp(kv[1][0], kv[1][1]) + kv[1][2]))[:beam]
        beams = dict(ranked)
        best_score = _logsumexp(ranked[0][1][0], ranked[0][1][1]) + ranked[0][1][2]

    def closed(item: tuple[str, list]) -> float:
        prefix, (pb, pnb, lm_score, _) = item
        score = _logsumexp(pb, pnb) + lm_score + alpha * lm.logp(prefix, " ")
        text = prefix.rstrip(" ")
        if words is not None and text:
            if not prefix.endswith(" "):
                score += word_score(text)
            score += gamma * words.logp(_last_word(text)[1], WordLM.END)
        return score

    best = max(beams.items(), key=closed)
    if closed(best) == neg:
        return "", []
    return best[0].rstrip(), best[1][3][: len(best[0].rstrip())]
