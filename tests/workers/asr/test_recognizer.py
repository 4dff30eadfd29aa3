import numpy as np
import pytest

from models import ARTIFACTS
from workers.asr.audio import read_wav
from workers.asr.recognizer import SPACE, AcousticModel, Recognizer
from workers.asr.text import ALPHABET, VOCAB_SIZE
from workers.settings import OnnxSettings

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
