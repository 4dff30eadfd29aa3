"""The speech model's data: the telephone channel of the narrowband stage, the long pauses of the pauses
stage, the telephone evaluation copies and the LM text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models import asr_data
from workers.asr.audio import _MEL, N_FFT, SAMPLE_RATE, read_wav

needs_data = pytest.mark.skipif(not asr_data.ASR_DATA.exists(), reason="../shared/data/asr not present")

_FREQS = np.arange(_MEL.shape[0]) * SAMPLE_RATE / N_FFT
MEL_CENTRES_HZ = (_FREQS[:, None] * _MEL).sum(0) / _MEL.sum(0)


def _upper_band_level(feats: np.ndarray) -> float:
    """Mean log-mel energy of the bands above 4.2 kHz, where an 8 kHz line carries nothing."""
    return float(feats[:, MEL_CENTRES_HZ > 4_200].astype(np.float32).mean())


@needs_data
def test_the_telephone_channel_removes_the_band_above_4_khz_and_keeps_the_rest() -> None:
    clip = asr_data.lj_clips()[0][0]
    spec = {"path": clip.path, "text": clip.text, "speed": 1.0, "seed": 5, "snr_db": None}
    wide, _ = asr_data._job(spec)
    narrow, _ = asr_data._job({**spec, "via_rate": 8_000})
    assert abs(len(wide) - len(narrow)) <= 1  # the round trip may drop the last sample's frame
    frames = min(len(wide), len(narrow))
    wide, narrow = wide[:frames], narrow[:frames]
    assert _upper_band_level(wide) > -9 and _upper_band_level(narrow) < -13  # log(1e-6) = -13.8: nothing there
    speech_band = MEL_CENTRES_HZ < 1_500  # above, the line rolls off towards its 3.6 kHz edge
    level = [x[:, speech_band].astype(np.float32).mean(0) for x in (wide, narrow)]
    assert np.abs(level[0] - level[1]).max() < 0.25  # within ~25% of the energy in every band


@needs_data
def test_the_narrowband_stage_sends_half_of_the_wideband_utterances_through_the_telephone_channel() -> None:
    jobs = asr_data.narrowband_jobs(0)
    fsdd = [j for j in jobs if j["path"].startswith(str(asr_data.ASR_DATA / "fsdd"))]
    others = [j for j in jobs if j not in fsdd]
    assert fsdd and not any(j.get("via_rate") for j in fsdd)  # FSDD is recorded at 8 kHz already
    share = np.mean([j.get("via_rate") == 8_000 for j in others])
    assert 0.45 < share < 0.55
    assert sum(j["path"].startswith("tts:") for j in jobs) == 1600
    assert asr_data.narrowband_jobs(0) == jobs  # drawn once: the rendered set is reproducible


@needs_data
def test_the_pauses_stage_puts_half_of_its_utterances_after_a_long_silence() -> None:
    jobs = asr_data.pause_jobs(0)
    leads = np.array([j["pad_s"][0] for j in jobs])
    assert 0.45 < np.mean(leads >= 0.8) < 0.55 and leads.max() <= 4.0
    assert np.mean(leads < 0.8) > 0.4  # the rest keeps the short pauses the earlier stages trained on
    assert any(j.get("via_rate") for j in jobs)  # still the narrowband mix
    assert asr_data.pause_jobs(0) == jobs

    long_pause = next(j for j in jobs if j["pad_s"][0] > 2.0 and j["path"].startswith(str(asr_data.ASR_DATA / "fsdd")))
    feats, text = asr_data._job(long_pause)
    frames_before = int(long_pause["pad_s"][0] * 100)  # 10 ms feature frames
    speech = feats[frames_before:].astype(np.float32).max(1)
    assert feats[: frames_before - 5].astype(np.float32).max(1).mean() < speech.mean() - 2
    assert text == long_pause["text"]


@needs_data
def test_telephone_copies_are_8_khz_wavs_of_the_same_speech(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(asr_data, "EVAL_CACHE", tmp_path)
    clips = asr_data.lj_clips()[1][:2]
    copies = asr_data.telephone_copies(clips)
    assert [c.text for c in copies] == [c.text for c in clips]
    for clip, copy in zip(clips, copies, strict=True):
        audio, rate = read_wav(copy.path)
        original, original_rate = read_wav(clip.path)
        assert rate == 8_000 and abs(len(audio) / rate - len(original) / original_rate) < 0.01
    written = Path(copies[0].path).stat().st_mtime_ns
    asr_data.telephone_copies(clips)
    assert Path(copies[0].path).stat().st_mtime_ns == written  # written once, then reused


@needs_data
def test_the_lm_text_has_digit_strings_and_no_held_out_reference() -> None:
    corpus = asr_data.lm_corpus()
    digits = set(asr_data.DIGITS)
    strings = [line for line in corpus if len(line.split()) > 1 and set(line.split()) <= digits]
    assert len(strings) >= asr_data.LM_DIGIT_STRINGS * 0.8  # one in ten is a single digit
    assert max(len(s.split()) for s in strings) == 10
    held_out = {c.text for c in asr_data.lj_clips()[1]} | {c.text for c in asr_data.pocketsphinx_clips()}
    assert not held_out & set(corpus)


@needs_data
def test_only_the_evaluation_sets_asked_for_are_built(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(asr_data, "EVAL_CACHE", tmp_path)
    sets = asr_data.evaluation_sets(["fsdd_jackson_digit_prompt"])
    assert list(sets) == ["fsdd_jackson_digit_prompt"] and sets["fsdd_jackson_digit_prompt"].phrases == asr_data.DIGITS
    assert len(sets["fsdd_jackson_digit_prompt"].clips) == 500
    assert not list(tmp_path.iterdir())  # no 8 kHz copies written for a set not asked for
    with pytest.raises(ValueError, match="no evaluation set fsdd_nobody"):
        asr_data.evaluation_sets(["fsdd_nobody"])


@needs_data
def test_after_pause_copies_start_with_a_second_of_quiet_noise(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(asr_data, "EVAL_CACHE", tmp_path)
    clip = asr_data.fsdd_clips()[1][0]
    (copy,) = asr_data.after_pause([clip])
    audio, rate = read_wav(copy.path)
    original, original_rate = read_wav(clip.path)
    pause = int(asr_data.PAUSE_S * rate)
    assert rate == original_rate and copy.text == clip.text and len(audio) == pause + len(original)
    level = 20 * np.log10(np.sqrt(np.mean(audio[:pause] ** 2)))
    assert abs(level - asr_data.PAUSE_DBFS) < 1.5  # PCM16 rounding at -60 dBFS
    assert np.allclose(audio[pause:], original, atol=1 / 32768)
