"""Audio in, log-mel frames out: the one front end training, ``workers transcribe`` and the worker share.

Frames are computed without centring or padding (frame ``n`` covers samples ``n*HOP .. n*HOP+WINDOW``),
so a stream cut into chunks of any size yields exactly the frames of the whole signal:
:class:`FeatureStream` carries the samples of the unfinished frame over to the next chunk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
N_FFT = 512
N_MELS = 80
MAX_INPUT_RATE = 192_000


def _mel_filterbank() -> np.ndarray:
    """[N_FFT // 2 + 1, N_MELS] triangular filters on the HTK mel scale, 20 Hz .. 7.6 kHz."""
    def mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(np.array(20.0)), mel(np.array(7600.0)), N_MELS + 2))
    bins = np.linspace(0, SAMPLE_RATE / 2, N_FFT // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).T.astype(np.float32)


_MEL = _mel_filterbank()
_WINDOW_FN = np.hanning(WINDOW).astype(np.float32)


def log_mel(frames: np.ndarray) -> np.ndarray:
    """[n, WINDOW] float samples -> [n, N_MELS] log-mel energies."""
    spectrum = np.fft.rfft(frames * _WINDOW_FN, n=N_FFT).astype(np.complex64)
    power = spectrum.real ** 2 + spectrum.imag ** 2
    return np.log(power @ _MEL + 1e-6).astype(np.float32)


def frame_count(samples: int) -> int:
    return 0 if samples < WINDOW else 1 + (samples - WINDOW) // HOP


def features(audio: np.ndarray) -> np.ndarray:
    """Whole signal (float32 at SAMPLE_RATE) -> [frames, N_MELS]; what a stream of any chunking yields."""
    n = frame_count(len(audio))
    if n == 0:
        return np.zeros((0, N_MELS), np.float32)
    index = np.arange(WINDOW)[None, :] + HOP * np.arange(n)[:, None]
    return log_mel(audio[index])


class FeatureStream:
    """Incremental :func:`features`: feed chunks, get the frames they complete."""

    __slots__ = ("_carry",)

    def __init__(self) -> None:
        self._carry = np.zeros(0, np.float32)

    def push(self, chunk: np.ndarray) -> np.ndarray:
        audio = np.concatenate([self._carry, chunk]) if len(self._carry) else chunk
        n = frame_count(len(audio))
        self._carry = audio[n * HOP:]
        return features(audio[: (n - 1) * HOP + WINDOW]) if n else np.zeros((0, N_MELS), np.float32)


def pcm16_to_float(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 32767 / 32768) * 32768.0).astype("<i2").tobytes()


class Resampler:
    """Stateful resampling to ``target``: an anti-aliasing low-pass (order-10 Butterworth at 0.45 of the lower
    rate, kept with its filter state) and linear interpolation that carries its phase and last sample over.
    Chunked and whole-signal use give identical output, so a stream, ``workers transcribe`` and training
    hear the same samples."""

    def __init__(self, rate: int, target: int = SAMPLE_RATE) -> None:
        if not 1_000 <= rate <= MAX_INPUT_RATE:
            raise ValueError(f"sample rate {rate} Hz is outside 1000..{MAX_INPUT_RATE}")
        self.rate, self.target = rate, target
        self._next = 0  # index of the next output sample
        self._base = 0  # global index of the first sample of the next input chunk
        self._previous = np.float32(0.0)
        if rate != target:
            from scipy.signal import butter

            self._sos = butter(10, 0.45 * min(rate, target), fs=max(rate, target), output="sos")
            self._zi = np.zeros((self._sos.shape[0], 2))

    def _filter(self, x: np.ndarray) -> np.ndarray:
        from scipy.signal import sosfilt

        y, self._zi = sosfilt(self._sos, x, zi=self._zi)
        return y

    def push(self, chunk: np.ndarray) -> np.ndarray:
        if self.rate == self.target or len(chunk) == 0:
            return chunk.astype(np.float32, copy=False)
        x = self._filter(chunk) if self.rate > self.target else chunk.astype(np.float64)
        last = self._base + len(x) - 1  # global index of the last input sample
        end = (last * self.target + self.rate - 1) // self.rate  # outputs that lie before ``last``
        ks = np.arange(self._next, end, dtype=np.int64)
        position = ks * self.rate
        index = position // self.target - (self._base - 1)  # into [previous, *x]
        frac = (position % self.target) / self.target
        buffer = np.concatenate([[self._previous], x])
        y = buffer[index] * (1.0 - frac) + buffer[index + 1] * frac
        self._next, self._base, self._previous = end, self._base + len(x), x[-1]
        if self.rate < self.target:
            y = self._filter(y)
        return y.astype(np.float32)


def resample(audio: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Whole signal from ``rate`` to ``target``: exactly what a stream of it yields."""
    return Resampler(rate, target).push(audio)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A WAV file (PCM 8/16/24/32-bit or float, any rate, any channel count) -> (mono float32, rate)."""
    from scipy.io import wavfile

    rate, data = wavfile.read(str(path))
    if data.dtype == np.uint8:
        audio = (data.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(data.dtype, np.integer):
        audio = data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    else:
        audio = data.astype(np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    return audio, int(rate)


def write_wav(path: str | Path, audio: np.ndarray, rate: int) -> None:
    """Float samples in [-1, 1] -> a mono PCM16 WAV file (what :func:`read_wav` reads back)."""
    from scipy.io import wavfile

    wavfile.write(str(path), rate, np.frombuffer(float_to_pcm16(audio), np.int16))


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """A WAV file at its own rate; a headerless ``.raw`` file is read as PCM16 mono at 16 kHz."""
    path = Path(path)
    if path.suffix == ".raw":
        return pcm16_to_float(path.read_bytes()), SAMPLE_RATE
    return read_wav(path)


def load_audio(path: str | Path) -> np.ndarray:
    """A WAV (or ``.raw``) file resampled to the model's rate, exactly as a stream of it would be."""
    audio, rate = read_audio(path)
    return resample(audio, rate)
