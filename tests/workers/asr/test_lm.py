import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from models import ARTIFACTS
from workers.asr.audio import read_audio
from workers.asr.lm import CharLM, LanguageModels, Phrases, SearchSettings, WordLM, beam_search
from workers.asr.recognizer import AcousticModel, Recognizer
from workers.asr.text import ALPHABET, VOCAB_SIZE
from workers.asr.settings import AsrSettings
from workers.settings import OnnxSettings

from .lattices import lattice
from .reference_search import reference_beam_search

MODEL = ARTIFACTS / "asr"
SAMPLES = Path(__file__).resolve().parents[3] / "workers" / "asr" / "samples"

CORPUS = ["the exhibition of printing", "the exhibition was open", "printing in the exhibition"] * 5


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
    log_probs = lattice(spec)
    greedy = "".join(ALPHABET[t - 1] for t in log_probs.argmax(1) if t)
    assert greedy == "the exibition"
    text, times = beam_search(log_probs, lm, beam=8, alpha=1.0, beta=1.0)
    assert text == word
    assert times == [2 * i for i in range(len(word))]


DIGIT_CORPUS = ["the bank is open", "the card is blocked", "what is the rate", *["one", "five", "nine"]]


def test_the_word_lm_knows_what_starts_and_ends_a_segment_and_round_trips(tmp_path) -> None:
    words = WordLM.train(DIGIT_CORPUS)
    assert "five" in words.vocabulary and "fiv" in words.prefixes and "fie" not in words.prefixes
    # "the" is the commonest word, but it never makes a segment on its own; "nine" does
    alone = {w: words.logp("<s>", w) + words.logp(w, "</s>") for w in ("the", "nine")}
    assert alone["nine"] > alone["the"]
    assert words.logp("the", "bank") > words.logp("the", "open")  # seen after "the", and not
    assert words.logp("the", "zebra") < words.logp("the", "open")  # unknown, yet not impossible
    assert math.isfinite(words.logp("zebra", "zebra"))
    words.save(tmp_path / "words.txt.gz")
    loaded = WordLM.load(tmp_path / "words.txt.gz")
    assert loaded.vocabulary == words.vocabulary and loaded.logp("the", "card") == words.logp("the", "card")
    with pytest.raises(ValueError, match="not 'order'"):
        CharLM.load(tmp_path / "words.txt.gz")


def test_the_word_lm_turns_a_near_miss_into_the_word_it_was() -> None:
    """The acoustic model hears "fie" for "five" (the "v" is weak): the characters alone keep "fie", the
    vocabulary makes it "five" (greedy decoding gave "fie" for 33 of the held-out FSDD speaker's 500 digits)."""
    spec = [{"f": 0.9}, {"_": 0.99}, {"i": 0.9}, {"_": 0.99}, {"v": 0.05, "_": 0.95}, {"e": 0.9}, {"_": 0.99}]
    log_probs = lattice(spec)
    models = LanguageModels(CharLM.train(DIGIT_CORPUS, order=3, min_count=1), WordLM.train(DIGIT_CORPUS))
    settings = SearchSettings.of(AsrSettings())
    assert models.search(log_probs, dataclasses.replace(settings, word_weight=0.0)).text == "fie"
    found = models.search(log_probs, settings)
    assert found.text == "five" and found.frames == [0, 2, 4, 5]


def test_a_phrase_list_is_normalised_like_transcripts_and_says_what_is_wrong() -> None:
    phrases = Phrases.parse(["Yes", "no", "Talk to an agent!", "yes", " [unk] "])
    assert phrases.phrases == ("yes", "no", "talk to an agent") and phrases.open
    assert phrases.vocabulary == {"yes", "no", "talk", "to", "an", "agent"}
    assert not Phrases.parse(["one"]).open
    for bad, why in [([], "empty"), (["[unk]"], "besides"), ([3], "string"), (["?!"], "no word"),
                     (["x" * 101], "more than"), (["a"] * 1001, "> 1000")]:
        with pytest.raises(ValueError, match=why):
            Phrases.parse(bad)


THREE_HEARD_AS_THE = [{"t": 0.9}, {"_": 0.99}, {"h": 0.9}, {"r": 0.2, "_": 0.8}, {"e": 0.9}, {"_": 0.99},
                      {"e": 0.3, "_": 0.7}, {"_": 0.99}]
"""A weak "r" and a soft second "e": open dictation hears "the", the likelier word."""


def test_a_phrase_list_makes_the_search_choose_among_its_words_or_nothing() -> None:
    models = LanguageModels(CharLM.train(DIGIT_CORPUS, order=3, min_count=1), WordLM.train(DIGIT_CORPUS))
    settings = SearchSettings.of(AsrSettings())
    log_probs = lattice(THREE_HEARD_AS_THE)
    assert models.search(log_probs, settings).text == "the"
    digits = Phrases.parse(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    found = models.search(log_probs, settings, digits)
    assert found.text == "three" and found.frames == [0, 2, 3, 4, 6]
    # nothing in the list sounds like it: an empty final, not the nearest word forced in
    assert models.search(log_probs, settings, Phrases.parse(["five", "nine"])).text == ""
    # an open list admits another word; the recogniser reports it as [unk] (test_recognizer)
    assert models.search(log_probs, settings, Phrases.parse(["five", "nine", "[unk]"])).text == "the"


def test_a_clear_letter_no_phrase_can_take_does_not_end_the_search() -> None:
    """A frame whose only likely token is a letter outside every phrase (the blank below ``prune``): the
    search skips it instead of losing all its prefixes."""
    models = LanguageModels(CharLM.train(DIGIT_CORPUS, order=3, min_count=1), WordLM.train(DIGIT_CORPUS))
    settings = SearchSettings.of(AsrSettings())
    spec = [{"_": 0.99}, {"q": 0.9999}, *THREE_HEARD_AS_THE]
    assert lattice(spec)[1, 0] < settings.prune
    digits = Phrases.parse(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    found = models.search(lattice(spec), settings, digits)
    assert found.text == "three" and found.frames == [2, 4, 5, 6, 8]


def test_a_closed_list_still_tries_a_word_whose_first_letter_is_barely_heard() -> None:
    """"five" over a phone line after a pause: the "f" is under ``beam_prune`` and far below the silence's
    blank. A closed list's search tries it (``phrase_prune``, no margin); open dictation cannot."""
    models = LanguageModels(CharLM.train(DIGIT_CORPUS, order=3, min_count=1), WordLM.train(DIGIT_CORPUS))
    settings = SearchSettings.of(AsrSettings())
    weak_f = math.exp(-9.0)
    spec = [{"_": 0.999}] * 10 + [{"f": weak_f}, {"f": weak_f}, {"i": 0.9}, {"i": 0.5}, {"v": 0.9}, {"e": 0.9},
                                  {"e": 0.5}] + [{"_": 0.999}] * 5
    assert settings.phrase_prune < lattice(spec)[10, ALPHABET.index("f") + 1] < settings.prune  # -10 < -9 < -8
    assert "f" not in models.search(lattice(spec), settings).text
    found = models.search(lattice(spec), settings, Phrases.parse(["five", "nine"]))
    assert found.text == "five" and found.frames[0] in (10, 11)


def _spoken(text: str, rng: np.random.Generator) -> np.ndarray:
    """A peaky CTC-like lattice of ``text``: each character over 1-3 frames at a random confidence, blanks
    between, and every frame's other tokens given random small shares (some above ``prune``)."""
    rows = []
    for ch in text:
        for _ in range(rng.integers(1, 4)):
            row = rng.dirichlet(np.full(VOCAB_SIZE, 0.05)) * rng.uniform(0.0, 0.6)
            row[ALPHABET.index(ch) + 1] += 1.0 - row.sum()
            rows.append(row)
        for _ in range(rng.integers(0, 3)):
            row = rng.dirichlet(np.full(VOCAB_SIZE, 0.05)) * rng.uniform(0.0, 0.3)
            row[0] += 1.0 - row.sum()
            rows.append(row)
    return np.log(np.maximum(np.array(rows), 1e-12)).astype(np.float32)


def _finals_lattices(path: Path, rate: int | None = None) -> list[np.ndarray]:
    """The committed acoustic model's log-probabilities for each final of a bundled sample (at ``rate``)."""
    recognizer = Recognizer.from_settings(AcousticModel(MODEL, OnnxSettings()), AsrSettings())
    audio, native = read_audio(path)
    if rate is not None:
        audio, native = audio[:: native // rate], rate
    stream, step, found = recognizer.new_stream(native), int(0.16 * native), []
    for i in range(0, len(audio), step):
        [segments] = recognizer.accept([stream], [audio[i:i + step]], [i + step >= len(audio)], defer_search=True)
        found += [s.lattice for s in segments if s.final and s.lattice is not None]
    return found


def test_the_search_finds_what_the_plain_prefix_beam_search_finds_bit_for_bit() -> None:
    """The search is tuned for speed (it is every final's cost); the reference is the same algorithm written
    plainly. Same text and frames for every setting the worker uses (open dictation with and without the
    word LM, beam 32 and the busy beam 8, with and without the margin, an open and a closed phrase list), on
    the committed model's lattices of the bundled samples (also at 8 kHz) and on made-up ones."""
    models = LanguageModels.load(MODEL)
    assert models is not None and models.words is not None
    lattices = [lp.astype(np.float32) for sample in sorted(SAMPLES.glob("*.wav")) for rate in (None, 8000)
                for lp in _finals_lattices(sample, rate)]
    rng = np.random.default_rng(7)
    lattices += [_spoken(text, rng) for text in ("the exhibition of printing was open", "four two nine one",
                                                 "my card was swallowed by the machine", "zero")]
    settings = SearchSettings.of(AsrSettings())
    digits = Phrases.parse(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    cases = [(dataclasses.replace(settings, beam=32), models.words, settings.unknown_word),
             (dataclasses.replace(settings, beam=8), models.words, settings.unknown_word),
             (dataclasses.replace(settings, beam=16, margin=math.inf), None, 0.0),
             (dataclasses.replace(settings, prune=settings.phrase_prune, margin=math.inf), digits.words(), -math.inf),
             (settings, Phrases.parse(["four", "two", "[unk]"]).words(), settings.unknown_word)]
    texts = set()
    for log_probs in lattices:
        for s, words, unknown in cases:
            args = (log_probs, models.chars, s.beam, s.lm_weight, s.lm_bonus, s.prune, words, s.word_weight,
                    unknown, s.margin)
            found = beam_search(*args)
            assert found == reference_beam_search(*args), (s, unknown)
            texts.add(found[0])
    assert len(lattices) >= 8 and len(texts) > len(lattices)  # real sentences, and each setting finds its own


def test_a_character_context_is_the_history_padded_at_a_segment_start() -> None:
    lm = CharLM.train(CORPUS, order=4, min_count=1)
    assert lm.context("") == "   " and lm.context("th") == " th" and lm.context("the exhibition") == "ion"
    assert lm.context("the ex" + "h") == (lm.context("the ex") + "h")[1:]
    assert lm.logp("th", "e") == lm.context_logp(" th", "e")
    assert CharLM.train(CORPUS, order=1).context("the") == ""
