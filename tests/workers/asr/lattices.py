"""Hand-written acoustic model output for the decoder and search tests."""

import numpy as np

from workers.asr.text import ALPHABET, VOCAB_SIZE


def lattice(spec: list[dict[str, float]]) -> np.ndarray:
    """Log-probabilities, one row per frame: the given character probabilities ("_" the blank), the rest to
    blank."""
    rows = np.full((len(spec), VOCAB_SIZE), 1e-6)
    for row, probs in zip(rows, spec, strict=True):
        for ch, p in probs.items():
            row[0 if ch == "_" else ALPHABET.index(ch) + 1] = p
        row[0] += max(0.0, 1 - row.sum())
    return np.log(rows / rows.sum(1, keepdims=True)).astype(np.float32)
