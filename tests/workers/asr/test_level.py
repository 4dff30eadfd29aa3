"""Streaming level control: quiet speech lifted, loud turned down, normal left alone, silence not made loud;
speech told from steady noise by its energy."""

import numpy as np

from workers.asr.level import BLOCK, LOUD_DBFS, NOISE_CEILING_DBFS, QUIET_DBFS, LevelControl

RATE = 16_000


def tone(seconds: float, dbfs: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * 440 * t) * np.sqrt(2) * 10 ** (dbfs / 20)).astype(np.float32)


def rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x.astype(np.float64) ** 2)))


def streamed(audio: np.ndarray, chunk: int = 2560) -> np.ndarray:
    control = LevelControl()
    return np.concatenate([control.push(audio[i:i + chunk]) for i in range(0, len(audio), chunk)])


def words(dbfs: float) -> np.ndarray:
    """Speech-like: 200 ms bursts at ``dbfs`` between 100 ms pauses 40 dB below (a quiet room)."""
    quiet = (np.random.default_rng(1).standard_normal(RATE // 10) * 10 ** ((dbfs - 40) / 20)).astype(np.float32)
    return np.concatenate([np.concatenate([quiet, tone(0.2, dbfs)]) for _ in range(5)])


def test_quiet_speech_is_lifted_and_loud_turned_down_and_normal_left_alone() -> None:
    for dbfs, want in ((-50, QUIET_DBFS), (-12, -12), (-2, LOUD_DBFS)):
        out = streamed(words(dbfs))
        last_word = out[-int(0.15 * RATE):]
        assert abs(rms_db(last_word) - want) < 1.0, dbfs


def test_any_chunking_gives_the_same_samples() -> None:
    audio = np.concatenate([np.zeros(4000, np.float32), tone(1.0, -45), tone(0.5, -15)])
    assert np.allclose(streamed(audio, 2560), streamed(audio, 1000), atol=1e-6)


def test_a_dc_offset_is_removed() -> None:
    out = streamed(tone(2.0, -30) + np.float32(0.2))
    assert abs(float(out[RATE:].mean())) < 1e-3


def test_a_noise_floor_is_never_lifted_above_the_ceiling() -> None:
    noise = (np.random.default_rng(0).standard_normal(3 * RATE) * 10 ** (-60 / 20)).astype(np.float32)
    assert rms_db(streamed(noise)[RATE:]) <= NOISE_CEILING_DBFS + 1.0
    assert not streamed(np.zeros(RATE, np.float32)).any()


def speech_blocks(audio: np.ndarray, chunk: int = 2560) -> np.ndarray:
    control = LevelControl()
    for i in range(0, len(audio), chunk):
        control.push(audio[i:i + chunk])
    return control.take_speech(len(audio) // BLOCK, 1)


def test_quiet_words_are_speech_by_their_energy_and_the_pauses_between_them_are_not() -> None:
    flags = speech_blocks(words(-50)).reshape(5, 30)  # 10 ms blocks: 100 ms pause, 200 ms word, five times
    assert flags[:, 12:28].all() and not flags[:, 2:9].any()


def test_a_word_said_at_once_is_speech_and_steady_noise_is_not() -> None:
    """A stream may begin mid-word (push to talk); one that begins in room noise must not count it."""
    at_once = np.concatenate([tone(0.05, -58), tone(0.3, -46)])  # a soft onset, then the vowel
    assert speech_blocks(at_once)[6:].all()
    for dbfs in (-50, -35):
        hiss = (np.random.default_rng(2).standard_normal(3 * RATE) * 10 ** (dbfs / 20)).astype(np.float32)
        assert not speech_blocks(hiss).any()


def test_speech_flags_do_not_depend_on_the_chunking_and_frames_past_them_are_not_speech() -> None:
    audio = words(-30)
    assert np.array_equal(speech_blocks(audio, 2560), speech_blocks(audio, 999))
    control = LevelControl()
    control.push(np.concatenate([tone(0.01, -40), tone(0.09, -20)]))  # 10 blocks
    assert control.take_speech(1, 1).tolist() == [False]  # the first block sets the floor
    assert control.take_speech(4, 2).tolist() == [True] * 4
    assert control.take_speech(2, 1).tolist() == [True, False]  # one block left, then none pushed
