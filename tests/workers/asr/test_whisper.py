"""The finals' second pass: Whisper's features, its tokenizer, the committed int8 pair, and what a final
carries when the recogniser runs it (spoken text, Whisper's display, aligned word times, confidences)."""

from pathlib import Path

import numpy as np
import pytest

from models import ARTIFACTS
from workers.asr.audio import SAMPLE_RATE, read_wav, resample
from workers.asr.recognizer import AcousticModel, Recognizer, align, word_confidences
from workers.asr.text import ALPHABET, spoken, word_errors
from workers.asr.whisper import Decoded, Whisper, level, log_mel, window_frames
from workers.settings import OnnxSettings

SAMPLES = Path(__file__).resolve().parents[3] / "workers" / "asr" / "samples"
WHISPER = ARTIFACTS / "asr" / "whisper"


def sample(name: str) -> np.ndarray:
    audio, rate = read_wav(SAMPLES / name)
    return resample(audio, rate, SAMPLE_RATE)


@pytest.fixture(scope="module")
def whisper() -> Whisper:
    return Whisper(WHISPER)


def test_the_features_equal_faster_whispers_extractor() -> None:
    reference = pytest.importorskip("faster_whisper.feature_extractor")
    audio = sample("librivox-0880.wav")
    want = reference.FeatureExtractor()(audio)  # [80, frames]
    assert np.abs(log_mel(audio) - want.T).max() < 1e-4


def test_a_segment_at_any_level_or_dc_offset_is_brought_to_one_level() -> None:
    audio = sample("librivox-0880.wav")
    loud = level(audio)
    for gain_db, offset in ((-50, 0.0), (-30, 0.02), (-6, 0.0)):
        scaled = audio * np.float32(10 ** (gain_db / 20)) / np.abs(audio).max() + np.float32(offset)
        assert np.abs(level(scaled) - loud).max() < 1e-3
    assert not level(np.zeros(1600, np.float32)).any()  # silence stays silence


def test_the_encoder_window_holds_the_segment_and_seconds_of_silence() -> None:
    assert window_frames(200) == 700  # a 2 s segment: a 7 s window
    assert window_frames(900) == 1200  # 9 s: 3 s of silence after it
    assert window_frames(2990) == 3000  # never past the 30 s of positions


def test_the_encoder_hands_each_decoder_layer_its_cross_keys_and_values_split_in_heads(whisper: Whisper) -> None:
    # laid out as the decoder multiplies them: a step neither slices, splits nor transposes them
    from models.whisper import CROSS, HEADS, WIDTH

    cross = whisper.encoder.run({"mel": np.zeros((1, 1000, 80), np.float32)})
    assert sorted(cross) == sorted(CROSS)
    assert cross["cross_k_0"].shape == (1, HEADS, WIDTH // HEADS, 500)
    assert cross["cross_v_3"].shape == (1, HEADS, 500, WIDTH // HEADS)
    assert set(CROSS) <= {i.name for i in whisper.decoder.session.get_inputs()}


def test_the_committed_pair_transcribes_unseen_speech(whisper: Whisper) -> None:
    lj, librivox = whisper.transcribe([sample("LJ001-0006.wav"), sample("librivox-0880.wav")])
    errors, words = word_errors("and it is worth mention in passing that as an example of fine typography",
                                spoken(lj.text))
    assert errors / words <= 0.1, lj.text
    assert lj.text[0].isupper() and lj.text[-1] in ".,"  # Whisper's own casing and punctuation
    assert len(lj.tokens) == len(lj.probabilities) and all(0 < p <= 1 for p in lj.probabilities)
    assert "young man" in librivox.text


def test_noise_gets_the_no_speech_token_speech_does_not(whisper: Whisper) -> None:
    rng = np.random.default_rng(3)
    hiss = np.fft.irfft(np.fft.rfft(rng.standard_normal(SAMPLE_RATE * 2)) / np.sqrt(np.arange(SAMPLE_RATE + 1) + 1.0))
    noise, speech = whisper.transcribe([(hiss / np.abs(hiss).max() * 0.1).astype(np.float32), sample("LJ001-0006.wav")])
    assert noise.no_speech > 0.6 and speech.no_speech < 0.1
    assert noise.heard_nothing(0.6, -0.4) and not speech.heard_nothing(0.6, -0.4)


def test_the_no_speech_rule_keeps_text_the_decoder_is_sure_of() -> None:
    sure, unsure = Decoded("Three.", [1, 2], [0.98, 0.95], 0.61), Decoded("Two.", [1, 2], [0.1, 0.9], 0.61)
    assert not sure.heard_nothing(0.6, -0.4) and unsure.heard_nothing(0.6, -0.4)
    assert not unsure.heard_nothing(0.7, -0.4)  # the no-speech token not likely enough
    assert Decoded("", [], [], 0.0).heard_nothing(0.6, -0.4)


def test_a_words_confidence_is_its_own_tokens_not_the_punctuation_after_it(whisper: Whisper) -> None:
    tokens = whisper.tokenizer.encode(" Two. In 1963.")
    pieces = whisper.tokenizer.pieces(tokens)
    probabilities = [0.9 if p.strip() in ".," else 0.1 * (i + 1) for i, p in enumerate(pieces)]
    scored = word_confidences(whisper, Decoded("Two. In 1963.", tokens, probabilities))
    assert [w for w, _ in scored] == ["two", "in", "nineteen", "sixty", "three"]
    assert scored[0][1] == pytest.approx(0.1)  # not the stop's 0.9
    assert len({c for _, c in scored[2:]}) == 1 and scored[2][1] < 0.9  # the year's tokens, shared by its words


def test_a_segment_reads_the_same_whatever_is_decoded_beside_it(whisper: Whisper) -> None:
    # the committed decoder's rows are independent (8-bit weights, activations quantized per row), so segments
    # with one window share its calls: three short ones (the 7 s window) together, the long one on its own
    assert whisper.rows_independent
    lj, librivox = sample("LJ001-0006.wav"), sample("librivox-0880.wav")  # 5.7 and 3.0 s
    clips = [np.concatenate([lj, librivox]), lj[: SAMPLE_RATE * 2], lj[: SAMPLE_RATE * 4], librivox]
    together = whisper.transcribe(clips)
    alone = [whisper.transcribe([c])[0] for c in clips]
    assert [(d.tokens, d.probabilities, d.no_speech) for d in together] == \
        [(d.tokens, d.probabilities, d.no_speech) for d in alone]
    assert len({len(d.tokens) for d in alone[1:]}) > 1  # done at different steps: the batch shrank as each ended


def test_a_segment_said_twice_over_by_greedy_decoding_is_cut_at_the_repeat() -> None:
    assert Whisper._repeats([1, 2, 3, 4, 5, 6, 1, 2, 3, 4]) == 4
    assert Whisper._repeats([7, 7, 7, 7, 7]) == 4
    assert Whisper._repeats([1, 2, 3, 4, 5, 1, 2, 3, 9]) == 0


def test_spoken_reads_numbers_out() -> None:
    assert spoken("It's 5 past 10:30, in 1963.") == "it's five past ten thirty in nineteen sixty three"
    assert spoken("The 21st of May: $5, 10% of 1,000,000.") == \
        "the twenty first of may five dollars ten percent of one million"
    assert spoken("2005, 1900 and the 1960s; 3.5") == \
        "two thousand five one thousand nine hundred and the nineteen sixties three point five"


def test_alignment_finds_where_each_character_is_emitted() -> None:
    rows = np.full((12, len(ALPHABET) + 1), -9.0, np.float32)
    rows[:, 0] = -0.01
    for frame, char in ((2, "h"), (4, "i"), (6, " "), (9, "y"), (10, "o")):
        rows[frame] = -9.0
        rows[frame, ALPHABET.index(char) + 1] = -0.01
    assert align(rows, "hi yo") == [2, 4, 6, 9, 10]
    assert align(rows[:3], "hi yo") is None  # too short to spell it


def test_a_final_carries_the_second_pass_text_display_times_and_confidences() -> None:
    model = AcousticModel(ARTIFACTS / "asr", OnnxSettings())
    recognizer = Recognizer(model)
    assert recognizer.whisper is not None
    audio = np.concatenate([np.zeros(SAMPLE_RATE // 2, np.float32), sample("LJ001-0006.wav")])
    stream, finals = recognizer.new_stream(SAMPLE_RATE), []
    for start in range(0, len(audio), 2560):
        end = start + 2560 >= len(audio)
        finals += [s for s in recognizer.accept([stream], [audio[start:start + 2560]], [end])[0] if s.final]
    final = finals[-1]
    errors, words = word_errors("and it is worth mention in passing that as an example of fine typography",
                                " ".join(f.text for f in finals))
    assert errors / words <= 0.15
    display = recognizer.display(final)
    assert display is not None and display[0].isupper()
    starts = [w.start_s for w in final.words]
    assert starts == sorted(starts) and final.start_s - 0.5 <= starts[0] and starts[-1] <= final.end_s
    assert all(0 < w.confidence <= 1 for w in final.words)
    assert final.audio is None and final.lattice is None  # nothing owed any more


def test_the_tokenizer_encodes_as_whisper_writes(whisper: Whisper) -> None:
    tokenizer = whisper.tokenizer
    for text in (" Seven.", " 7", " It's 5 o'clock, isn't it?", " naïve café"):
        assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.encode(" seven") == [3598]  # one token, as Whisper writes a word after a space


def test_a_closed_list_keeps_what_spells_its_words_and_scores_its_phrases_otherwise(whisper: Whisper) -> None:
    digits = whisper.word_list(("one", "two", "seven"))
    assert digits.spells("Seven.") and digits.spells("1, 2, 7") and digits.spells("one two")
    assert not digits.spells("Kevin.") and not digits.spells("")
    written = {whisper.tokenizer.decode(c) for c in digits.candidates}
    assert {" Seven.", " 7.", " seven"} <= written and len(written) == 9  # each phrase as Whisper may write it
