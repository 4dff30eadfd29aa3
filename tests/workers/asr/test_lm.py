import math

import numpy as np

from workers.asr.lm import CharLM, beam_search
from workers.asr.text import ALPHABET, VOCAB_SIZE

CORPUS = ["the exhibition of printing", "the exhibition was open", "printing in the exhibition"] * 5


def frames(spec: list[dict[str, float]]) -> np.ndarray:
    """One row per frame: the given character probabilities, the rest to blank."""
    rows = np.full((len(spec), VOCAB_SIZE), 1e-6)
    for row, probs in zip(rows, spec, strict=True):
        for ch, p in probs.items():
            rows_index = 0 if ch == "_" else ALPHABET.index(ch) + 1
            row[rows_index] = p
        row[0] += max(0.0, 1 - row.sum())
    return np.log(rows / rows.sum(1, keepdims=True)).astype(np.float32)


def test_probabilities_sum_to_one_and_the_model_round_trips(tmp_path) -> None:
    lm = CharLM.train(CORPUS, order=4, min_count=1)
    assert math.isclose(sum(math.exp(lm.logp("the ex", c)) for c in ALPHABET), 1.0, rel_tol=1e-9)
    assert lm.logp("the ex", "h") > lm.logp("the ex", "q")
    lm.save(tmp_path / "lm.txt.gz")
    loaded = CharLM.load(tmp_path / "lm.txt.gz")
    assert len(loaded) == len(lm) and loaded.logp("the ex", "h") == lm.logp("the ex", "h")
    (tmp_path / "elsewhere").mkdir()
    lm.save(tmp_path / "elsewhere" / "lm.txt.gz")  # same bytes: retraining leaves an unchanged LM unchanged in git
    assert (tmp_path / "elsewhere" / "lm.txt.gz").read_bytes() == (tmp_path / "lm.txt.gz").read_bytes()


def test_the_beam_with_the_lm_prefers_the_known_spelling_and_times_each_character() -> None:
    lm = CharLM.train(CORPUS, order=5, min_count=1)
    word = "the exhibition"
    spec = []
    for ch in word:
        # the acoustic model is unsure about the "h" after "x": greedy decoding drops it
        spec.append({ch: 0.4, "_": 0.6} if (ch == "h" and spec and len(spec) > 8) else {ch: 0.9})
        spec.append({"_": 0.99})
    log_probs = frames(spec)
    greedy = "".join(ALPHABET[t - 1] for t in log_probs.argmax(1) if t)
    assert greedy == "the exibition"
    text, times = beam_search(log_probs, lm, beam=8, alpha=1.0, beta=1.0)
    assert text == word
    assert times == [2 * i for i in range(len(word))]
