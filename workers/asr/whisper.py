"""The finals' second pass: a segment's audio, re-decoded with the ported Whisper tiny.en (``models.whisper``
exports it) in ONNX Runtime, greedy with the decoder's KV cache as state. A batch of segments is encoded
in one call and decoded together, one decoder call per token for the whole batch.

Whisper's own features (80-bin log-mel of 16 kHz audio, window 400, hop 160; log10, floored 8 below the
segment's peak, scaled (x + 4) / 4) are computed here in numpy: a final has its whole segment, so the
segment's peak is no look-ahead. The segment is first brought to a fixed speech level (:func:`level`), so
a whisper at -50 dBFS and a shout at -6 dBFS read the same.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workers.runtime.artifact import Manifest
from workers.runtime.onnx_model import OnnxModel
from workers.settings import OnnxSettings

SAMPLE_RATE = 16_000
N_FFT = 400
HOP = 160
N_MELS = 80
MAX_SECONDS = 30.0
ENCODER_FRAMES = 3000
"""Feature frames the encoder has positions for (30 s)."""
MIN_WINDOW_S = 7.0
TAIL_S = 3.0
REPEAT_NGRAM = 4
TARGET_DBFS = -20.0
"""The RMS level a segment's loudest stretch is brought to before the second pass."""


@functools.cache
def mel_filters() -> np.ndarray:
    """Slaney-scaled mel filters [80, 201], as Whisper (and librosa's defaults) build them."""
    fft_freqs = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    mels = np.linspace(0.0, 45.245640471924965, N_MELS + 2)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    freqs = f_sp * mels
    log_region = mels >= min_log_mel
    freqs[log_region] = min_log_hz * np.exp(np.log(6.4) / 27.0 * (mels[log_region] - min_log_mel))
    ramps = freqs[:, None] - fft_freqs[None, :]
    widths = np.diff(freqs)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (freqs[2:N_MELS + 2] - freqs[:N_MELS]))[:, None]
    return weights.astype(np.float32)


def feature_frames(samples: int) -> int:
    """Feature frames of a segment of ``samples`` (:func:`log_mel`, cut at 30 s)."""
    return min(ENCODER_FRAMES, min(samples, int(MAX_SECONDS * SAMPLE_RATE)) // HOP + 1)


def window_frames(frames: int) -> int:
    """The encoder's input length for a segment of ``frames`` feature frames: the segment plus at least
    :data:`TAIL_S` of silence, at least :data:`MIN_WINDOW_S`. Whisper was trained on 30 s windows that end in
    silence; cut at the speech's end it repeats itself (measured on held-out LJ Speech, int8, 2 cores: WER
    0.485 with no padding, 0.154 with 3 s, 0.026 in a 10 s window, 0.019 in 30 s at 2.5x the cost). The
    least window went from 10 to 7 s on the tuning's development sets (FSDD speaker nicolas' digits: WER
    0.054 at 10 s, 0.048 at 8, 0.042 at 7, 0.048 at 6; every tenth LJ training clip 0.037 at each): the encoder
    is most of a short final's cost, 64-68 ms for 10 s and 37 ms for 7 s on one core."""
    wanted = max(frames + int(TAIL_S * 100), int(MIN_WINDOW_S * 100))
    return min(ENCODER_FRAMES, wanted + wanted % 2)


def encoder_input(segments: list[np.ndarray]) -> tuple[np.ndarray, int]:
    """The encoder's batch [B, frames, 80] for 16 kHz ``segments`` (each levelled, cut at 30 s, padded to one
    :func:`window_frames` with the feature floor, as Whisper's zero padding gives), and the longest
    segment's feature frames."""
    mels = [log_mel(level(s[: int(MAX_SECONDS * SAMPLE_RATE)]))[:ENCODER_FRAMES] for s in segments]
    longest = max(len(m) for m in mels)
    batch = np.empty((len(mels), window_frames(longest), N_MELS), np.float32)
    for row, mel in enumerate(mels):
        batch[row, :len(mel)] = mel
        batch[row, len(mel):] = mel.min()
    return batch, longest


def level(audio: np.ndarray) -> np.ndarray:
    """``audio`` scaled so its loudest 100 ms window has RMS :data:`TARGET_DBFS`, the DC offset removed.
    Silence (nothing above -80 dBFS) is left as it is."""
    audio = audio.astype(np.float32) - np.float32(audio.mean()) if len(audio) else audio.astype(np.float32)
    window = SAMPLE_RATE // 10
    if len(audio) < window:
        peak = float(np.sqrt(np.mean(audio ** 2))) if len(audio) else 0.0
    else:
        summed = np.cumsum(np.concatenate([[0.0], audio.astype(np.float64) ** 2]))  # a running sum: O(n), where
        peak = float(np.sqrt(max(0.0, (summed[window:] - summed[:-window]).max() / window)))  # convolving was O(n * window)
    if peak < 1e-4:
        return audio
    return np.clip(audio * np.float32(10 ** (TARGET_DBFS / 20) / peak), -1.0, 1.0)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Whisper's features of 16 kHz ``audio``: [frames, 80], 100 frames per second."""
    audio = np.pad(audio.astype(np.float32), (0, HOP))  # as Whisper's extractor pads
    padded = np.pad(audio, N_FFT // 2, mode="reflect")
    frames = 1 + (len(padded) - N_FFT) // HOP
    index = np.arange(N_FFT)[None, :] + HOP * np.arange(frames)[:, None]
    window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
    spectrum = np.abs(np.fft.rfft(padded[index] * window, axis=-1)) ** 2
    mel = spectrum[:-1] @ mel_filters().T
    log = np.log10(np.maximum(mel, 1e-10))
    log = np.maximum(log, log.max() - 8.0)
    return ((log + 4.0) / 4.0).astype(np.float32)


@functools.cache
def _byte_encoder() -> dict[int, str]:
    return {byte: char for char, byte in _byte_decoder().items()}


_PRE_TOKENS = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+""")
"""GPT-2's pre-tokenizer (letters, digits, other symbols, spaces), ``\p{L}`` written as ``[^\W\d_]``."""


@functools.cache
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet: printable bytes stand for themselves, the rest are shifted to 256+."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra, table = 0, {}
    for byte in range(256):
        if byte in kept:
            table[chr(byte)] = byte
        else:
            table[chr(256 + extra)] = byte
            extra += 1
    return table


class Tokenizer:
    """Whisper's English vocabulary: token ids -> text (byte-level BPE), and the special tokens."""

    def __init__(self, vocabulary: list[str], merges: list[str] | None = None) -> None:
        self.vocabulary = vocabulary
        self.ranks = {tuple(m.split(" ")): rank for rank, m in enumerate(merges or [])}
        index = {token: i for i, token in enumerate(vocabulary)}
        self.index = index
        self.eot = index["<|endoftext|>"]
        self.sot = index["<|startoftranscript|>"]
        self.no_timestamps = index["<|notimestamps|>"]
        self.timestamp_begin = index["<|0.00|>"]
        self.no_speech = index.get("<|nospeech|>", index.get("<|nocaptions|>"))
        self.prompt = [self.sot, self.no_timestamps]

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """``vocabulary.txt``, and ``merges.txt`` beside it when there (needed only to :meth:`encode`)."""
        merges = Path(path).with_name("merges.txt")
        return cls(Path(path).read_text(encoding="utf-8").splitlines(),
                   merges.read_text(encoding="utf-8").splitlines() if merges.exists() else None)

    def encode(self, text: str) -> list[int]:
        """Byte-level BPE: the token ids Whisper would write ``text`` with."""
        if not self.ranks:
            raise ValueError("this vocabulary came without merges.txt: it can decode, not encode")
        encoder, ids = _byte_encoder(), []
        for piece in _PRE_TOKENS.findall(text):
            parts = [encoder[b] for b in piece.encode("utf-8")]
            while len(parts) > 1:
                pairs = [(self.ranks.get(pair, 1 << 30), i) for i, pair in enumerate(zip(parts, parts[1:]))]
                rank, i = min(pairs)
                if rank == 1 << 30:
                    break
                parts[i:i + 2] = [parts[i] + parts[i + 1]]
            ids += [self.index[part] for part in parts]
        return ids

    def decode(self, tokens: list[int]) -> str:
        decoder = _byte_decoder()
        text = "".join(self.vocabulary[t] for t in tokens if t < self.eot)
        return bytes(decoder[c] for c in text if c in decoder).decode("utf-8", errors="replace")

    def pieces(self, tokens: list[int]) -> list[str]:
        """Each token's own text (a word starts with a space)."""
        return [self.decode([t]) for t in tokens]


@dataclass(slots=True)
class Decoded:
    """One segment's second pass: Whisper's text as it wrote it, its tokens and their probabilities, and
    the probability the decoder gives its no-speech token at the start of the transcript."""

    text: str
    tokens: list[int]
    probabilities: list[float]
    no_speech: float = 0.0

    def heard_nothing(self, no_speech: float, log_probability: float) -> bool:
        """Whisper's rule for a segment with no speech in it: the no-speech token at least ``no_speech``
        likely and the text's tokens no likelier than ``log_probability`` (their mean log-probability). The
        decoder writes something for any audio, and tuned on digits it writes a digit for loud noise
        ("Two." with its word token at 0.08-0.25): noise gives the no-speech token 0.77-0.94 and such text a
        mean log-probability of -3.5 to -0.6, held-in speech 0.05-0.67 and -1.05 to 0 (docs/notes/asr-log.md)."""
        if not self.probabilities:
            return True
        mean = float(np.mean(np.log(np.maximum(self.probabilities, 1e-12))))
        return self.no_speech >= no_speech and mean <= log_probability


class WhisperManifest(Manifest):
    """The exported pair's manifest: ``whisper`` holds the vocabulary file, the suppressed tokens and the
    parity measured at export."""

    whisper: dict


class Whisper:
    """``encoder.onnx`` + ``decoder.onnx`` + ``vocabulary.txt`` of one model directory."""

    def __init__(self, model_dir: str | Path, onnx: OnnxSettings | None = None) -> None:
        model_dir = Path(model_dir)
        onnx = onnx or OnnxSettings()
        self.encoder = OnnxModel(model_dir, onnx, filename="encoder.onnx")
        self.decoder = OnnxModel(model_dir, onnx, filename="decoder.onnx")
        spec = WhisperManifest.load(model_dir).whisper
        self.tokenizer = Tokenizer.load(model_dir / spec.get("vocabulary", "vocabulary.txt"))
        self.layers, self.width = int(spec["layers"]), int(spec["width"])
        self.max_tokens = int(spec.get("max_tokens", 448))
        suppress = np.zeros(len(self.tokenizer.vocabulary), np.float32)
        suppress[np.asarray(spec["suppress_ids"], np.int64)] = -np.inf
        suppress[self.tokenizer.eot + 1:] = -np.inf  # special and timestamp tokens: text only
        self.suppress = suppress
        begin = suppress.copy()
        begin[np.asarray(spec["suppress_ids_begin"], np.int64)] = -np.inf
        self.suppress_begin = begin
        self.rows_independent = not spec.get("int8") or "decoder.onnx" in spec.get("quantization", {})
        """Whether a decoder row's output is the same whatever rows are beside it: float32, or the 8-bit
        weight-only decoder (``models.whisper.quantize_pair``). Older exports quantized the decoder's
        activations per call ("He" alone, "he" in a batch of two): those decode one segment a call."""
        self._word_lists: dict[tuple[str, ...], WordList] = {}

    def word_list(self, phrases: tuple[str, ...]) -> WordList:
        """The :class:`WordList` of a phrase list (built once per list)."""
        if phrases not in self._word_lists:
            self._word_lists[phrases] = WordList(self.tokenizer, phrases)
        return self._word_lists[phrases]

    @classmethod
    def available(cls, model_dir: str | Path) -> bool:
        return (Path(model_dir) / "encoder.onnx").exists() and (Path(model_dir) / "decoder.onnx").exists()

    def transcribe(self, segments: list[np.ndarray], max_new: int | None = None,
                   words: list[WordList | None] | None = None) -> list[Decoded]:
        """Greedy decoding of 16 kHz ``segments`` (each cut at 30 s). ``words``: per segment, the closed
        phrase list it is held to (see :class:`WordList`).

        Each segment is encoded alone: a window is a large matrix product already (a batch saves nothing,
        measured), and the encoder's int8 activations are scaled per call, so a neighbour would change its
        output. Segments with the same window are then decoded together, one decoder call a token for all
        of them, when the decoder's rows are independent (:attr:`rows_independent`): each gets the tokens and
        probabilities it gets alone, so a final is the same wherever it is decoded (the worker, ``workers
        transcribe``, a restart). A step costs ~2.5 ms for one segment, ~6 for four (one core)."""
        if not segments:
            return []
        words = words or [None] * len(segments)
        encoded = [self._encode(segment) for segment in segments]
        together: dict[int, list[int]] = {}  # window frames -> segments decoded in one batch
        for i, (_, frames) in enumerate(encoded):  # the window, as the finals' pool predicts it from the audio
            key = window_frames(frames) if self.rows_independent else -1 - i
            together.setdefault(key, []).append(i)
        found: list[Decoded | None] = [None] * len(segments)
        for rows in together.values():
            cross = _stack([encoded[i][0] for i in rows])
            decoded = self._decode(cross, [encoded[i][1] for i in rows], max_new)
            for i, free, no_speech in zip(rows, decoded, self._no_speech(cross), strict=True):
                only = words[i]
                if only is not None and not only.spells(free.text):
                    free = self._choose(encoded[i][0], only)
                free.no_speech = no_speech
                found[i] = free
        return found  # type: ignore[return-value]

    def _encode(self, segment: np.ndarray) -> tuple[dict[str, np.ndarray], int]:
        """One segment's cross keys and values (the free decoding and a phrase list's scores share them),
        and its feature frames."""
        batch, longest = encoder_input([segment])
        return self.encoder.run({"mel": batch}), longest

    def _no_speech(self, cross: dict[str, np.ndarray]) -> list[float]:
        """Each encoded segment's probability of the no-speech token right after start-of-transcript (where
        Whisper was trained to write it for audio without speech): one decoder step on ``cross``."""
        if self.tokenizer.no_speech is None:
            return [0.0] * _rows(cross)
        feeds = self._first_feeds(cross, _rows(cross))
        feeds["tokens"] = feeds["tokens"][:, :1]
        return [float(p) for p in np.exp(self.decoder.run(feeds)["log_probs"][:, self.tokenizer.no_speech])]

    def _first_feeds(self, cross: dict[str, np.ndarray], count: int) -> dict[str, np.ndarray]:
        """The decoder's first call for ``count`` rows: the prompt, an empty cache, the encoder's keys and
        values (one segment's repeated when ``count`` rows score it)."""
        empty = np.zeros((count, self.layers, 0, self.width), np.float32)
        repeat = count // _rows(cross)
        return {"tokens": np.tile(np.asarray([self.tokenizer.prompt], np.int32), (count, 1)),
                "offset": np.zeros((count, 1), np.int32), "past_k": empty, "past_v": empty,
                **{name: np.repeat(value, repeat, 0) if repeat > 1 else value for name, value in cross.items()}}

    def _choose(self, cross: dict[str, np.ndarray], only: WordList) -> Decoded:
        """The phrase of ``only`` the decoder finds likeliest as the whole segment (encoded as ``cross``):
        each written form scored token by token up to the end of text, all of them in one batch."""
        candidates = only.candidates
        count, longest = len(candidates), max(len(c) for c in candidates)
        feeds = self._first_feeds(cross, count)
        targets = np.full((count, longest + 1), self.tokenizer.eot, np.int64)
        for row, tokens in enumerate(candidates):
            targets[row, :len(tokens)] = tokens
        lengths = np.asarray([len(c) for c in candidates])
        scores = np.zeros((count, longest + 1), np.float32)
        for step in range(longest + 1):
            out = self.decoder.run(feeds)
            scores[:, step] = out["log_probs"][np.arange(count), targets[:, step]]
            feeds.update(tokens=targets[:, step:step + 1].astype(np.int32),
                         offset=np.full((count, 1), len(self.tokenizer.prompt) + step, np.int32),
                         past_k=out["next_k"], past_v=out["next_v"])
        totals = [float(scores[row, :lengths[row] + 1].sum()) for row in range(count)]
        best = int(np.argmax(totals))
        tokens = candidates[best]
        return Decoded(self.tokenizer.decode(tokens).strip(), list(tokens),
                       [float(np.exp(v)) for v in scores[best, :len(tokens)]])

    def _decode(self, cross: dict[str, np.ndarray], longest: list[int], max_new: int | None) -> list[Decoded]:
        """Greedy decoding of the encoded segments ``cross`` (of ``longest`` feature frames each). A segment
        that is done (end of text, a repeat, its token limit) leaves the batch, so the others' steps no
        longer pay for it."""
        count = _rows(cross)
        feeds = self._first_feeds(cross, count)
        limits = [max_new or min(self.max_tokens // 2, 8 + int(frames / 100 * 6)) for frames in longest]  # speech: ~3 tokens/s
        tokens: list[list[int]] = [[] for _ in range(count)]
        probabilities: list[list[float]] = [[] for _ in range(count)]
        active = list(range(count))  # the segments still decoded, in the order of the batch's rows
        position = len(self.tokenizer.prompt)
        for step in range(max(limits)):
            out = self.decoder.run(feeds)
            scores = out["log_probs"] + (self.suppress_begin if step == 0 else self.suppress)
            best = scores.argmax(-1)
            going = []
            for row, segment in enumerate(active):
                token = int(best[row])
                if token == self.tokenizer.eot:
                    continue
                tokens[segment].append(token)
                probabilities[segment].append(float(np.exp(out["log_probs"][row, token])))
                cut = self._repeats(tokens[segment])
                if cut:
                    del tokens[segment][-cut:], probabilities[segment][-cut:]
                elif step + 1 < limits[segment]:
                    going.append(row)
            if not going:
                break
            if len(going) < len(active):  # rows are independent: dropping some changes none of the others
                feeds.update({name: feeds[name][going] for name in cross})
                out = {name: out[name][going] for name in ("next_k", "next_v")}
                best = best[going]
                active = [active[row] for row in going]
            feeds.update(tokens=best[:, None].astype(np.int32), offset=np.full((len(active), 1), position, np.int32),
                         past_k=out["next_k"], past_v=out["next_v"])
            position += 1
        return [Decoded(self.tokenizer.decode(t).strip(), t, p) for t, p in zip(tokens, probabilities, strict=True)]

    @staticmethod
    def _repeats(tokens: list[int], ngram: int = REPEAT_NGRAM) -> int:
        """Greedy decoding's failure mode is saying it again: a loop of a few tokens, or the whole sentence
        once more (held-out LJ Speech: "..., and it is worth mentioning ..." twice in one segment). When
        the last ``ngram`` tokens already occurred in this segment, the number of tokens to drop (the
        ``ngram``); else 0."""
        if len(tokens) <= ngram:
            return 0
        tail = tokens[-ngram:]
        for start in range(len(tokens) - ngram):
            if tokens[start:start + ngram] == tail:
                return ngram
        return 0


_NUMERALS = {"zero": "0", "oh": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
             "seven": "7", "eight": "8", "nine": "9", "ten": "10"}


def _rows(cross: dict[str, np.ndarray]) -> int:
    """How many segments the encoder's outputs ``cross`` hold."""
    return len(next(iter(cross.values())))


def _stack(crosses: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Encoded segments (one window) as one batch."""
    if len(crosses) == 1:
        return crosses[0]
    return {name: np.concatenate([c[name] for c in crosses]) for name in crosses[0]}


class WordList:
    """A stream's closed phrase list (no ``[unk]``) for the decoder. A segment whose free decoding is made
    of the list's words keeps it (a digit string, "yes"); else each phrase, as Whisper would write it
    ("Seven.", "7.", " seven"), is scored as the whole segment and the likeliest is the final: on the unseen
    FSDD speaker's digits this is what takes "Kevin." and "Bye." back to "seven" and "five"."""

    MAX_PHRASES = 50
    """Longer lists are scored by the beam search instead (each phrase costs a row of the scoring batch)."""

    def __init__(self, tokenizer: Tokenizer, phrases: tuple[str, ...]) -> None:
        self.words = frozenset(w for p in phrases for w in p.split())
        forms: list[list[int]] = []
        for phrase in phrases:
            written = {" " + phrase.capitalize() + ".", " " + phrase}
            if phrase in _NUMERALS:
                written.add(" " + _NUMERALS[phrase] + ".")
            forms += [tokenizer.encode(w) for w in sorted(written)]
        self.candidates = forms

    def spells(self, text: str) -> bool:
        """``text`` (a decoder's written output) read out is made of the list's words only."""
        from workers.asr.text import spoken

        words = spoken(text).split()
        return bool(words) and all(w in self.words for w in words)
