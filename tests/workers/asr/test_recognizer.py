import numpy as np
import pytest

from models import ARTIFACTS
from workers.asr.audio import read_wav
from workers.asr.handler import STREAM_CODEC
from workers.asr.lm import CharLM, LanguageModels, Phrases, SearchSettings, WordLM, beam_search
from workers.asr.recognizer import SPACE, AcousticModel, Decoder, Recognizer, Segment, Stream, confidences
from workers.asr.text import ALPHABET, VOCAB_SIZE
from workers.asr.settings import AsrSettings
from workers.settings import OnnxSettings

from .lattices import lattice

MODEL = ARTIFACTS / "asr"
LJ = ARTIFACTS.parents[2] / "shared" / "data" / "asr" / "ljspeech" / "wavs" / "LJ001-0001.wav"


@pytest.fixture(scope="module")
def acoustic() -> AcousticModel:
    return AcousticModel(MODEL, OnnxSettings())


def recorded(model: AcousticModel) -> list[np.ndarray]:
    """Every log-probability row the model produces, per call, for the first stream of each call."""
    calls: list[np.ndarray] = []
    run = model.run

    def spy(memories, frames):
        out = run(memories, frames)
        calls.append(out[0])
        return out

    model.run = spy  # type: ignore[method-assign]
    return calls


def test_streaming_output_equals_offline_output_for_any_chunking_and_batching(acoustic: AcousticModel) -> None:
    audio, rate = read_wav(LJ) if LJ.exists() else (np.random.default_rng(0).normal(0, 0.1, 48000).astype(np.float32), 16000)
    recognizer = Recognizer(acoustic)
    calls = recorded(acoustic)
    try:
        recognizer.accept([recognizer.new_stream(rate)], [audio], [True])  # offline: the whole utterance at once
        offline = np.concatenate(calls)
        for seed in range(2):
            calls.clear()
            rng = np.random.default_rng(seed)
            stream, other = recognizer.new_stream(rate), recognizer.new_stream(rate)
            noise = rng.normal(0, 0.05, len(audio)).astype(np.float32)
            i = 0
            while i < len(audio):
                n = int(rng.integers(200, 6000))
                end = i + n >= len(audio)
                # a second stream in the same batch, with chunks of the same size so both share each call
                recognizer.accept([stream, other], [audio[i:i + n], noise[i:i + n]], [end, end])
                i += n
            streamed = np.concatenate(calls)
            assert streamed.shape == offline.shape
            np.testing.assert_allclose(streamed, offline, atol=1e-4)
    finally:
        del acoustic.run


class ScriptedModel:
    """An acoustic model that emits a given token per 20 ms frame (tests the decoder and endpointing)."""

    stack, frame_s, version = 2, 0.02, "scripted"
    punctuator = None  # finals stay as heard
    whisper = None  # no second pass but the beam search

    def __init__(self, tokens: list[int]) -> None:
        self.tokens, self.position = tokens, 0

    def initial_memory(self) -> dict:
        return {}

    def run(self, memories, frames):
        n = frames.shape[1] // 2
        out = np.full((len(memories), n, VOCAB_SIZE), -10.0, np.float32)
        for t in range(n):
            token = self.tokens[self.position] if self.position < len(self.tokens) else 0
            out[:, t, token] = 0.0
            self.position += 1
        return out


def tokens_of(text: str) -> list[int]:
    out = []
    for ch in text:
        out += [ALPHABET.index(ch) + 1, 0]  # each character followed by a blank
    return out


def test_partials_grow_finals_come_at_endpoints_and_at_the_end_of_stream() -> None:
    script = tokens_of("hi you") + [0] * 50 + tokens_of("ok") + [SPACE] * 5
    recognizer = Recognizer(ScriptedModel(script), endpoint_s=0.6)  # 30 blank frames end a segment
    stream = recognizer.new_stream(16000)
    chunk = np.zeros(1600, np.float32)  # 100 ms = 5 model frames
    seen = []
    for _ in range(16):
        seen += recognizer.accept([stream], [chunk], [False])[0]
    finals = [s for s in seen if s.final]
    assert [f.text for f in finals] == ["hi you"] and finals[0].reason == "endpoint"
    assert [w.word for w in finals[0].words] == ["hi", "you"] and finals[0].words[0].start_s == 0.0
    partials = [s.text for s in seen if not s.final and s.index == 0]
    assert partials[0] == "hi" and partials[-1] == "hi you"
    last = recognizer.accept([stream], [chunk], [True])[0]
    assert [(s.text, s.final, s.index) for s in last] == [("ok", True, 1)]  # the tail silence may endpoint it first


def test_a_partials_words_kept_between_chunks_equal_those_decoded_afresh() -> None:
    """Decoder.words keeps the words a space closed; after every chunk they equal a decode of all tokens."""
    script = tokens_of("the quick  brown fox ") + [SPACE] * 3 + tokens_of("jumps over it")
    recognizer = Recognizer(ScriptedModel(script), endpoint_s=5.0)
    stream = recognizer.new_stream(16000)
    rng = np.random.default_rng(0)
    for _ in range(45):
        (partial,) = recognizer.accept([stream], [np.zeros(320 * int(rng.integers(1, 4)), np.float32)], [False])[0]
        decoder = stream.decoder
        afresh = Decoder(tokens=list(decoder.tokens), times=list(decoder.times)).words(0.02) if decoder.heard else []
        assert [(w.word, w.start_s, w.end_s) for w in partial.words] == [(w.word, w.start_s, w.end_s) for w in afresh]
    assert partial.text == "the quick brown fox jumps over it"


DIGIT_TEXT = ["six", "two", "one two six", "six six two", "two one"]


class LatticeModel(ScriptedModel):
    """Emits the given log-probability rows (then blanks), and ships tiny LMs for the finals' search."""

    def __init__(self, rows: np.ndarray) -> None:
        self.rows, self.position = rows, 0
        self.lm = LanguageModels(CharLM.train(DIGIT_TEXT, order=3, min_count=1), WordLM.train(DIGIT_TEXT))

    def run(self, memories, frames):
        n = frames.shape[1] // 2
        out = np.tile(lattice([{"_": 1.0}]), (len(memories), n, 1))
        for t in range(n):
            if self.position < len(self.rows):
                out[:, t] = self.rows[self.position]
            self.position += 1
        return out


def run_chunks(recognizer: Recognizer, chunks: int, defer_search: bool = False) -> list:
    """``chunks`` chunks of 100 ms (5 model frames) of one stream, the last ending it."""
    stream, seen = recognizer.new_stream(16000), []
    for n in range(chunks):
        seen += recognizer.accept([stream], [np.zeros(1600, np.float32)], [n == chunks - 1], defer_search)[0]
    return seen


SOFT_SIX = [{}] * 10 + [{"s": 0.4}, {"s": 0.4}, {"i": 0.45}, {"x": 0.4}, {"x": 0.4}]
"""A softly spoken "six": the blank wins every frame, so greedy decoding hears nothing."""


def test_a_word_too_soft_for_greedy_decoding_opens_a_segment_the_beam_search_decodes() -> None:
    search = SearchSettings.of(AsrSettings())
    soft = Recognizer(LatticeModel(lattice(SOFT_SIX)), search=search, speech_probability=0.2)
    seen = run_chunks(soft, 12)
    assert [s.text for s in seen if not s.final] == [""] * len(seen[:-1])  # partials are greedy: nothing
    finals = [s for s in seen if s.final]
    assert [(f.text, f.reason, f.tentative) for f in finals] == [("six", "endpoint", True)]
    assert finals[0].words[0].start_s == pytest.approx(0.2, abs=0.03)
    strict = Recognizer(LatticeModel(lattice(SOFT_SIX)), search=search, speech_probability=1.0)
    assert [(s.text, s.reason) for s in run_chunks(strict, 12) if s.final] == [("", "end_of_stream")]


MISHEARD = [{}] * 3 + [{"s": 0.9}, {"e": 0.5, "i": 0.4}, {"x": 0.9}, {" ": 0.9}, {"t": 0.9}, {"w": 0.9}, {"o": 0.9}]
"""\"six two" with the vowel of "six" heard a little more as "e": greedy decoding writes "sex"."""


def partial_texts(recognizer: Recognizer, stream: Stream, chunks: int) -> list[str]:
    seen = []
    for _ in range(chunks):
        seen += recognizer.accept([stream], [np.zeros(1600, np.float32)], [False])[0]
    return [s.text for s in seen if not s.final]


def test_partials_are_searched_with_the_language_models_as_the_audio_comes() -> None:
    greedy = Recognizer(LatticeModel(lattice(MISHEARD)))
    assert partial_texts(greedy, greedy.new_stream(16000), 3)[-1] == "sex two"
    searching = Recognizer(LatticeModel(lattice(MISHEARD)), search=SearchSettings.of(AsrSettings()), partial_beam=8)
    stream = searching.new_stream(16000)
    partials = partial_texts(searching, stream, 3)
    assert partials[-1] == "six two"
    # what a partial shows is the search over the segment's frames so far, found chunk by chunk
    frames = np.concatenate(stream.decoder.log_probs).astype(np.float32)
    assert beam_search(frames, searching.model.lm.chars, 8, 0.3, 1.0, -8.0, searching.model.lm.words, 0.4, -5.0,
                       7.0)[0] == "six two"
    assert [w.word for w in searching.accept([stream], [np.zeros(1600, np.float32)], [False])[0][0].words] == [
        "six", "two"]


def test_a_restored_streams_partials_search_is_rebuilt_from_its_frames() -> None:
    """The changelog does not carry the search (derived state): a restored stream rebuilds it from the
    segment's stored frames and goes on showing what the original shows."""
    original = Recognizer(LatticeModel(lattice(MISHEARD)), search=SearchSettings.of(AsrSettings()), partial_beam=8)
    restored_model = LatticeModel(lattice(MISHEARD))
    restored = Recognizer(restored_model, search=SearchSettings.of(AsrSettings()), partial_beam=8)
    stream = original.new_stream(16000)
    partial_texts(original, stream, 1)
    restored_model.position = original.model.position  # the restored worker's model goes on where it was
    copy = STREAM_CODEC.decode(STREAM_CODEC.encode(stream))
    assert stream.decoder.search is not None and copy.decoder.search is None
    assert partial_texts(restored, copy, 2) == partial_texts(original, stream, 2)


def test_a_tentative_final_that_found_no_word_is_not_reported() -> None:
    def segment(text: str, final: bool = True, tentative: bool = True, reason: str | None = "endpoint") -> Segment:
        return Segment(0, text, [], final, 0.0, 1.0, reason, tentative=tentative)

    partial = segment("", final=False, tentative=False, reason=None)
    nothing, six = segment(""), segment("six")
    assert Recognizer.reportable([nothing, partial], end=False) == [partial]
    assert Recognizer.reportable([six, partial], end=False) == [six, partial]
    greedy_empty = segment("", tentative=False)
    assert Recognizer.reportable([greedy_empty, partial], end=False) == [greedy_empty, partial]
    assert Recognizer.reportable([nothing], end=True) == [nothing]  # a stream's end always has its final


def test_what_the_model_emits_before_it_has_any_history_is_not_speech_on_its_own() -> None:
    """A stream starting in silence: the model's first frames say "ti" whatever the audio (zero caches);
    counted as speech, every such stream began with a final "i"."""
    t, i = ALPHABET.index("t") + 1, ALPHABET.index("i") + 1
    seen = run_chunks(Recognizer(ScriptedModel([t, i] + [0] * 80)), 16)
    assert all(s.text == "" for s in seen) and [s.reason for s in seen if s.final] == ["end_of_stream"]
    spoken = run_chunks(Recognizer(ScriptedModel([t, i] + [0] * 5 + tokens_of("ok"))), 4)  # speech follows
    assert [s.text for s in spoken if s.final] == ["tiok"]


def test_silence_before_speech_is_not_kept_for_the_search() -> None:
    """Ten seconds of silence, then "two": the final's lattice starts just before the word, not at 0 s."""
    rows = lattice([{}] * 500 + [{"t": 0.9}, {}, {"w": 0.9}, {"o": 0.9}])
    recognizer = Recognizer(LatticeModel(rows), search=SearchSettings.of(AsrSettings()))
    finals = [s for s in run_chunks(recognizer, 110, defer_search=True) if s.final and s.reason == "endpoint"]
    assert len(finals) == 1 and finals[0].lattice is not None
    assert len(finals[0].lattice) < 100 and 9.5 < finals[0].lattice_start_s < 10.0
    recognizer.apply_search(finals[0], recognizer.search(finals[0].lattice))
    assert finals[0].text == "two" and finals[0].words[0].start_s == pytest.approx(10.0, abs=0.03)


def test_a_streams_phrase_list_shapes_its_finals_and_marks_other_words_unknown() -> None:
    """ "six two" said clearly: a closed list of "six" keeps only it; an open one reports "two" as [unk],
    with its time; partials stay open dictation (greedy here: no partial search)."""
    spoken = [{}] * 3 + [{"s": 0.9}, {"i": 0.9}, {"x": 0.9}, {" ": 0.9}, {"t": 0.9}, {"w": 0.9}, {"o": 0.9}]
    search = SearchSettings.of(AsrSettings())
    found = {}
    for items in (["six"], ["six", "[unk]"]):
        recognizer = Recognizer(LatticeModel(lattice(spoken)), search=search)
        stream, seen = recognizer.new_stream(16000, Phrases.parse(items)), []
        for n in range(4):
            seen += recognizer.accept([stream], [np.zeros(1600, np.float32)], [n == 3])[0]
        assert [s.text for s in seen if not s.final][-1] == "six two"
        (final,) = [s for s in seen if s.final]
        found[len(items)] = final
    assert found[1].text == "six"
    assert found[2].text == "six [unk]" and [w.word for w in found[2].words] == ["six", "[unk]"]
    assert found[2].words[1].start_s == pytest.approx(0.14)


def test_a_final_word_carries_its_confidence_and_words_below_the_floor_are_dropped() -> None:
    """ "six" heard clearly, then a "two" the blank wins every frame of (as loud noise is heard as "one")."""
    spoken = [{}] * 3 + [{"s": 0.9}, {"i": 0.95}, {"x": 0.85}, {" ": 0.9}, {"t": 0.3}, {"w": 0.25}, {"o": 0.35}]
    rows = lattice(spoken)
    assert confidences(rows, "six two", [3, 4, 5, 6, 7, 8, 9]) == pytest.approx([0.9, 0.3], abs=1e-3)
    search = SearchSettings.of(AsrSettings())
    finals = {}
    for floor in (0.0, 0.4):
        recognizer = Recognizer(LatticeModel(rows), search=search, speech_probability=0.01, min_confidence=floor)
        (finals[floor],) = [s for s in run_chunks(recognizer, 4) if s.final]
    assert [(w.word, round(w.confidence, 2)) for w in finals[0.0].words] == [("six", 0.9), ("two", 0.3)]
    assert finals[0.4].text == "six" and finals[0.4].words[0].as_dict()["confidence"] == 0.9
    recognizer = Recognizer(LatticeModel(rows), search=search)
    (partial,) = recognizer.accept([recognizer.new_stream(16000)], [np.zeros(1600, np.float32)], [False])[0]
    assert not partial.final and partial.words and "confidence" not in partial.words[0].as_dict()


def test_transcribe_reports_each_segments_last_partial_after_a_pause(tmp_path) -> None:
    """What `workers evaluate asr` scores as partials: per segment, the partial shown just before its final."""
    from workers.asr.audio import write_wav
    from workers.asr.transcribe import transcribe

    script = tokens_of("hi you") + [0] * 50 + tokens_of("ok")
    path = tmp_path / "speech.wav"
    write_wav(path, np.zeros(16000 * 2, np.float32), 16000)
    recognizer = Recognizer(ScriptedModel(script), endpoint_s=0.6)
    (result,) = transcribe([path], recognizer, pause_s=1.0)
    assert result["text"] == "hi you ok" and result["partials"] == "hi you ok"
    assert [s["text"] for s in result["segments"]] == ["hi you", "ok"]
    assert result["audio_s"] == 3.0  # the pause is sent as audio


QUIET_TWO = ARTIFACTS.parents[2] / "shared" / "data" / "asr" / "fsdd" / "recordings" / "2_jackson_13.wav"
"""An unseen speaker's "two" that, brought to -50 dBFS, the streaming model answers with letter probabilities
of 0.17 at most: no frame of it counts as speech by the model's output."""


@pytest.mark.skipif(not QUIET_TWO.exists(), reason="../shared/data/asr not present")
def test_a_quiet_word_the_model_does_not_answer_opens_a_segment_by_its_energy(acoustic, tmp_path) -> None:
    from workers.asr.audio import write_wav
    from workers.asr.transcribe import transcribe

    audio, rate = read_wav(QUIET_TWO)
    path = tmp_path / "two.wav"
    write_wav(path, audio * np.float32(10 ** (-50 / 20) / np.sqrt(np.mean(audio ** 2))), rate)

    def heard(**settings: bool) -> str:
        recognizer = Recognizer.from_settings(acoustic, AsrSettings(partial_beam=0, **settings))
        (result,) = transcribe([path], recognizer)
        return result["text"]

    assert heard(energy_speech=False) == ""
    assert heard() == "two"
