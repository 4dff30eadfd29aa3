import numpy as np
import pytest

from workers.asr.audio import (FeatureStream, Resampler, features, float_to_pcm16, pcm16_to_float, push_features,
                               read_wav, resample, resample_many)


def chunked(push, signal: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < len(signal):
        n = int(rng.integers(1, 3000))
        out.append(push(signal[i:i + n]))
        i += n
    return np.concatenate(out)


def test_features_of_a_stream_in_any_chunking_equal_those_of_the_whole_signal() -> None:
    signal = np.random.default_rng(0).normal(0, 0.1, 16000 * 3).astype(np.float32)
    whole = features(signal)
    assert whole.shape == (1 + (len(signal) - 400) // 160, 80)
    for seed in range(3):
        np.testing.assert_allclose(chunked(FeatureStream().push, signal, seed), whole, atol=1e-5)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampling_a_stream_in_chunks_equals_resampling_it_whole(rate: int) -> None:
    signal = np.random.default_rng(1).normal(0, 0.1, rate * 2).astype(np.float32)
    whole = resample(signal, rate)
    assert 0 <= 2 * 16000 - len(whole) <= 2  # the interpolator holds back its last input sample
    np.testing.assert_array_equal(chunked(Resampler(rate).push, signal, 2), whole)


def test_many_streams_resampled_and_featured_at_once_equal_each_stream_alone() -> None:
    """The worker's batched front end (one filter call per rate and chunk length, one log-mel call) gives
    every stream what it gets on its own, whatever the mix of rates and chunk sizes: the same samples, and
    the same features to rounding (the mel matrix product rounds differently with more rows)."""
    rng = np.random.default_rng(3)
    rates = [22050, 22050, 22050, 8000, 8000, 16000, 44100, 22050]
    signals = [rng.normal(0, 0.1, rate * 2).astype(np.float32) for rate in rates]
    alone = [(Resampler(rate), FeatureStream()) for rate in rates]
    together = [(Resampler(rate), FeatureStream()) for rate in rates]
    positions = [0] * len(rates)
    for step in range(25):
        chunks = []
        for i, (rate, signal) in enumerate(zip(rates, signals, strict=True)):
            n = int(0.16 * rate) if i % 2 or step % 5 else int(rng.integers(0, 3000))  # mostly equal chunks
            chunks.append(signal[positions[i]:positions[i] + n])
            positions[i] += n
        audio = resample_many([r for r, _ in together], chunks)
        frames = push_features([f for _, f in together], audio)
        for (resampler, feature_stream), chunk, got_audio, got_frames in zip(alone, chunks, audio, frames, strict=True):
            expected = resampler.push(chunk)
            np.testing.assert_array_equal(got_audio, expected)
            np.testing.assert_allclose(got_frames, feature_stream.push(expected), atol=1e-5)


@pytest.mark.parametrize("rate", [8000, 44100])
def test_a_tone_keeps_its_pitch_and_out_of_band_energy_is_filtered(rate: int) -> None:
    t = np.arange(rate) / rate
    tone = resample(np.sin(2 * np.pi * 1000 * t).astype(np.float32), rate)
    spectrum = np.abs(np.fft.rfft(tone[2000:]))
    assert abs(np.argmax(spectrum) * 16000 / len(tone[2000:]) - 1000) < 5
    if rate > 16000:  # 12 kHz cannot be represented at 16 kHz: the anti-aliasing filter removes it
        alias = resample(np.sin(2 * np.pi * 12000 * t).astype(np.float32), rate)
        assert np.sqrt(np.mean(alias[2000:] ** 2)) < 0.01


def test_pcm16_round_trip_and_wav_reading(tmp_path) -> None:
    from scipy.io import wavfile

    audio = np.linspace(-0.9, 0.9, 1000).astype(np.float32)
    np.testing.assert_allclose(pcm16_to_float(float_to_pcm16(audio)), audio, atol=1 / 32768)
    stereo = (np.stack([audio, audio], axis=1) * 32767).astype(np.int16)
    wavfile.write(tmp_path / "a.wav", 44100, stereo)
    mono, rate = read_wav(tmp_path / "a.wav")
    assert rate == 44100 and mono.shape == (1000,)
    np.testing.assert_allclose(mono, audio, atol=1e-4)
