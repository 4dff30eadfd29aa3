"""The streaming recognition path: audio chunks of many streams -> batched acoustic model -> CTC decoding
-> partial and final segments. The worker, ``workers transcribe``, ``workers mic --local`` and the WER
evaluation all run this code, so what is measured is what is served.

Per stream: a resampler, the log-mel carry-over, frames waiting for an even count, the model's memory
(convolution caches and GRU state), and the greedy CTC decoder of the current segment. A segment ends
(a *final*) at end of stream or after ``endpoint_s`` without speech following speech (see :class:`Decoder`
for what counts as speech).
Partials are a CTC beam search with the model's language models, carried from chunk to chunk, showing its best
prefix closed as if the segment ended there (``partial_beam``; 0: greedy CTC). A final gets a second pass
once: its audio re-decoded by the attention decoder
(Whisper tiny.en in the model's ``whisper/`` folder: two-pass recognition; a stream's phrase list holds it to
its phrases), or, for a model without it or with the second pass off, a beam search with the model's
language models (``lm.txt.gz``): here, or by the caller (``defer_search``; the worker runs it in another process, see ``workers.asr.finals``).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from workers.asr.audio import HOP, N_MELS, SAMPLE_RATE, FeatureStream, Resampler, push_features, resample_many
from workers.asr.level import LevelControl
from workers.asr.lm import GREEDY, LanguageModels, Phrases, PrefixSearch, Searched, SearchSettings
from workers.asr.punctuation import Punctuator
from workers.asr.text import ALPHABET, BLANK, spoken
from workers.asr.whisper import Decoded, Whisper, WordList
from workers.runtime.artifact import Manifest
from workers.runtime.onnx_model import OnnxModel
from workers.asr.settings import AsrSettings
from workers.settings import OnnxSettings

SPACE = ALPHABET.index(" ") + 1
TAIL_S = 0.5
"""Silence fed after end of stream: a causal CTC model emits a character a little after hearing it."""
STARTUP_FRAMES = 2
"""A stream's first model frames, which see no history (zero caches): the model emits "ti" there whatever
the audio, so they do not count as speech on their own (they stay in the segment if speech follows)."""
LEAD_FRAMES = 10
"""Frames of the silence before a segment kept for its beam search (the onset of a soft first word)."""
AUDIO_LEAD_S = 0.3
"""Audio before a segment's start kept for its second pass (a soft onset the endpointer placed late)."""
FINAL_TAIL_S = 0.3
"""Audio after a segment's last speech that its second pass reads, however the segment ends: all of it is
there this long into the silence, before the endpoint (``endpoint_s``), so the worker may start the second
pass from then on (:meth:`Recognizer.speech_ended`) and the final is the same as if it had waited."""
PEAK_FRAMES = 3
"""A character's confidence is its highest probability over the frame the search emitted it at and the next
two: CTC output peaks within a few frames of where a character is first emitted."""


@dataclass(slots=True)
class Word:
    word: str
    start_s: float
    end_s: float
    confidence: float | None = None
    """Finals' words: the mean, over the word's characters, of the model's probability for that character
    (:func:`confidences`); None in partials."""

    def as_dict(self) -> dict[str, Any]:
        word = {"word": self.word, "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3)}
        if self.confidence is not None:
            word["confidence"] = round(self.confidence, 3)
        return word


def confidences(lattice: np.ndarray, text: str, frames: list[int]) -> list[float]:
    """Per word of a searched ``text`` (characters emitted at ``frames`` of ``lattice``): the mean of its
    characters' peak probabilities (:data:`PEAK_FRAMES`). Words the model heard clearly score near 1; words
    the language models or a phrase list pulled out of weak evidence (noise heard as "one") score near 0."""
    scores, current = [], []
    for char, frame in zip([*text, " "], [*frames, 0], strict=True):
        if char == " ":
            if current:
                scores.append(float(np.mean(current)))
            current = []
        else:
            peak = lattice[frame:frame + PEAK_FRAMES, ALPHABET.index(char) + 1].max()
            current.append(float(np.exp(peak)))
    return scores


@dataclass(slots=True)
class Segment:
    """A recognised stretch of one stream: ``final`` when its endpoint (or the stream's end) was reached."""

    index: int
    text: str
    words: list[Word]
    final: bool
    start_s: float
    end_s: float
    reason: str | None = None  # finals: endpoint, max_segment, end_of_stream
    lattice: np.ndarray | None = None
    """A final's log-probabilities while its beam search is still owed (``accept(defer_search=True)``)."""
    lattice_start_s: float = 0.0
    phrases: Phrases | None = None
    """The stream's phrase list when the segment closed: its beam search uses only their words."""
    tentative: bool = False
    """A final of a segment that greedy decoding found no letter in (voiced by letter mass alone): when its
    beam search finds no word either, it is not reported (:meth:`Recognizer.reportable`)."""
    audio: np.ndarray | None = None
    """A final's 16 kHz audio while its second pass (the attention decoder) is still owed."""
    display: str | None = None
    """The second pass's own written form of a final (casing, punctuation, numerals)."""
    speech_end: int | None = None
    """A final's model frame (of the stream) where its speech ended: with its index, what an early second
    pass was started for (:meth:`Recognizer.speech_ended`)."""

    @property
    def owes_second_pass(self) -> bool:
        return self.lattice is not None or self.audio is not None


@dataclass(slots=True)
class Decoder:
    """Greedy CTC over the current segment, with the time of every emitted character, and the partials' beam
    search over the segment's stored frames when the recogniser has one (``search``: rebuilt from
    ``log_probs`` after a restore, so the changelog does not carry it).

    A frame is *voiced* when greedy emits a letter there, or when the letters' probability mass reaches
    the recogniser's ``speech_probability`` although the blank still wins: a short word said softly
    ("six", "two") can stay under the blank in every frame, yet the beam search over its segment finds it."""

    tokens: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    previous: int = BLANK
    silent_frames: int = 0  # consecutive unvoiced frames since the last voiced one
    heard: bool = False  # any voiced frame in this segment: it is speech, and it will end in a final
    log_probs: list[np.ndarray] = field(default_factory=list)  # the segment's frames, for the final's beam search
    first_time: float | None = None
    closed: list[Word] = field(default_factory=list)  # words() so far that a space ended
    closed_tokens: int = 0  # tokens those words used
    search: PrefixSearch | None = None

    __snapshot_exclude__ = ("search",)

    def push(self, best: np.ndarray, voiced: np.ndarray, first_time: float, frame_s: float,
             log_probs: np.ndarray | None = None) -> None:
        if log_probs is not None and len(log_probs):
            stored = log_probs.astype(np.float16)
            self.log_probs.append(stored)
            if self.first_time is None:
                self.first_time = first_time
            if self.search is not None:  # over what is stored, as a rebuilt search would be
                self.search.advance(stored.astype(np.float32))
        for i, (token, loud) in enumerate(zip(best.tolist(), voiced.tolist(), strict=True)):
            if token != self.previous and token != BLANK:
                if not (token == SPACE and (not self.tokens or self.tokens[-1] == SPACE)):
                    self.tokens.append(token)
                    self.times.append(first_time + i * frame_s)
            self.silent_frames = 0 if loud else self.silent_frames + 1
            self.heard = self.heard or loud
            self.previous = token

    @staticmethod
    def timed(text: str, frames: list[int], start_s: float, frame_s: float) -> list[Word]:
        """The words of a ``text`` whose characters were emitted at ``frames`` of a lattice starting at
        ``start_s`` (a search's or an alignment's result), timed as greedy decoding times its own."""
        return Decoder(tokens=[ALPHABET.index(c) + 1 for c in text],
                       times=[start_s + f * frame_s for f in frames]).words(frame_s)

    @property
    def has_speech(self) -> bool:
        """Greedy decoding has emitted a letter (a partial has text)."""
        return any(t != SPACE for t in self.tokens)

    def words(self, frame_s: float) -> list[Word]:
        """The segment's words so far. Words a space has closed are kept (``closed``): a partial per chunk
        costs the characters since the last space, not the whole segment again."""
        current: list[str] = []
        start = end = 0.0
        tokens, times = self.tokens, self.times
        for k in range(self.closed_tokens, len(tokens)):
            token = tokens[k]
            if token == SPACE:
                if current:
                    self.closed.append(Word("".join(current), start, end + frame_s))
                current = []
                self.closed_tokens = k + 1
            else:
                if not current:
                    start = times[k]
                current.append(ALPHABET[token - 1])
                end = times[k]
        return [*self.closed, Word("".join(current), start, end + frame_s)] if current else list(self.closed)


@dataclass(slots=True)
class SegmentAudio:
    """A stream's 16 kHz audio from a little before its open segment: what the second pass re-decodes."""

    chunks: list[np.ndarray] = field(default_factory=list)
    start: int = 0  # the stream's sample index (16 kHz) of the first kept sample
    size: int = 0

    def push(self, samples: np.ndarray) -> None:
        if len(samples):
            self.chunks.append(samples.astype(np.float32, copy=False))
            self.size += len(samples)

    def take(self, start_s: float, end_s: float) -> np.ndarray:
        audio = np.concatenate(self.chunks) if len(self.chunks) > 1 else (self.chunks[0] if self.chunks else
                                                                          np.zeros(0, np.float32))
        self.chunks = [audio] if len(audio) else []
        first = max(0, round(start_s * SAMPLE_RATE) - self.start)
        return audio[first:max(first, round(end_s * SAMPLE_RATE) - self.start)].copy()

    def drop_before(self, time_s: float) -> None:
        cut = round(time_s * SAMPLE_RATE) - self.start
        if cut <= 0 or not self.chunks:
            return
        audio = np.concatenate(self.chunks)[cut:]
        self.chunks = [audio] if len(audio) else []
        self.start += min(cut, self.size)
        self.size = len(audio)


class Heard(NamedTuple):
    """One stream's model frames of a chunk: log-probabilities [T, vocab], greedy token and voiced flag [T]."""

    log_probs: np.ndarray
    best: np.ndarray
    voiced: np.ndarray


@dataclass(slots=True)
class Stream:
    """Everything one audio stream carries between chunks."""

    rate: int
    resampler: Resampler
    features: FeatureStream
    pending: np.ndarray
    memory: dict[str, np.ndarray]
    decoder: Decoder = field(default_factory=Decoder)
    frames_done: int = 0  # model frames (20 ms) consumed
    segment: int = 0
    segment_start_s: float = 0.0
    samples_in: int = 0  # at the stream's own rate
    phrases: Phrases | None = None
    """What the stream may say (its client's phrase list), for its finals' second pass; None: anything."""
    audio: SegmentAudio = field(default_factory=SegmentAudio)
    level: LevelControl = field(default_factory=LevelControl)

    @property
    def audio_s(self) -> float:
        return self.samples_in / self.rate


class AsrManifest(Manifest):
    """The acoustic model's manifest: ``asr`` holds the front end it expects and its state shapes,
    ``training`` the sizes it was built with, ``lm`` its language models."""

    asr: dict[str, Any]


class AcousticModel:
    """The exported streaming graph plus what its manifest says about features and state."""

    def __init__(self, model_dir: str | Path, onnx: OnnxSettings) -> None:
        self.onnx = OnnxModel(model_dir, onnx)
        self.onnx_settings = onnx
        spec = AsrManifest.load(model_dir).asr
        if spec["sample_rate"] != SAMPLE_RATE or spec["n_mels"] != N_MELS or spec["hop"] != HOP:
            raise ValueError(f"{model_dir}: the model expects features this front end does not make: {spec}")
        if spec["alphabet"] != ALPHABET:
            raise ValueError(f"{model_dir}: alphabet {spec['alphabet']!r} differs from {ALPHABET!r}")
        self.stack: int = spec["stack"]
        self.state_shapes = {name: tuple(shape) for name, shape in spec["state"].items()}
        self.frame_s = self.stack * HOP / SAMPLE_RATE
        self.model_dir = Path(model_dir)
        self.lm = LanguageModels.load(self.model_dir)
        """The language models shipped with the acoustic model, for the finals' beam search."""

    @functools.cached_property
    def punctuator(self) -> Punctuator | None:
        """The casing and punctuation tagger shipped with it, for the finals' ``display``: loaded when a
        recogniser that punctuates asks for it, not by every user of the acoustic model."""
        return Punctuator.load(self.model_dir)

    @functools.cached_property
    def whisper(self) -> Whisper | None:
        """The second pass's attention model shipped with it (``whisper/``), loaded when a recogniser asks."""
        folder = self.model_dir / "whisper"
        return Whisper(folder, self.onnx_settings) if Whisper.available(folder) else None

    @property
    def version(self) -> str:
        return self.onnx.version

    def initial_memory(self) -> dict[str, np.ndarray]:
        return {name: np.zeros(shape, np.float32) for name, shape in self.state_shapes.items()}

    def run(self, memories: list[dict[str, np.ndarray]], frames: np.ndarray) -> np.ndarray:
        """One batched call: ``frames`` [B, T, n_mels] (T a multiple of ``stack``); updates each memory in
        place and returns log-probabilities [B, T / stack, vocab]."""
        feeds = {"features": frames}
        for name in self.state_shapes:
            feeds[name] = np.stack([m[name] for m in memories])
        out = self.onnx.run(feeds)
        for name in self.state_shapes:
            nxt = out[f"next_{name}"]
            for row, memory in enumerate(memories):
                memory[name] = nxt[row]
        return out["log_probs"]

    def warmup(self, runs: int) -> None:
        memories = [self.initial_memory() for _ in range(4)]
        observer, self.onnx.observer = self.onnx.observer, None
        try:
            for _ in range(runs):
                self.run(memories, np.zeros((4, 16, N_MELS), np.float32))
        finally:
            self.onnx.observer = observer


class Owed(NamedTuple):
    """What a final's second pass reads: its audio (attention decoder) or its frames and phrases (search)."""

    lattice: np.ndarray | None
    phrases: Phrases | None
    audio: np.ndarray | None


def owed(segment: Segment) -> Owed:
    return Owed(segment.lattice if segment.audio is None else None, segment.phrases, segment.audio)


def second_pass(whisper: Whisper | None, lm: LanguageModels | None, settings: SearchSettings,
                jobs: list[Owed]) -> list[Searched | Decoded]:
    """Each job's second pass: the attention decoder over its audio (held to a closed phrase list's words),
    else the beam search over its frames."""
    found: list[Searched | Decoded | None] = [None] * len(jobs)
    heard = [i for i, job in enumerate(jobs) if job.audio is not None]
    if heard:
        assert whisper is not None, "a final carries audio only where the model has the attention decoder"
        closed = [whisper.word_list(p.phrases) if (p := jobs[i].phrases) is not None and not p.open
                  and len(p.phrases) <= WordList.MAX_PHRASES else None for i in heard]
        for i, decoded in zip(heard, whisper.transcribe([jobs[i].audio for i in heard], words=closed), strict=True):
            found[i] = decoded
    for i, job in enumerate(jobs):
        if found[i] is None:
            assert lm is not None and job.lattice is not None
            found[i] = lm.search(job.lattice, settings, job.phrases)
    return found  # type: ignore[return-value]


def word_confidences(whisper: Whisper, decoded: Decoded) -> list[tuple[str, float]]:
    """The decoded text's spoken words, each with the mean probability of the tokens of the written word it
    was read from ("1963" gives four words, each with the confidence of the tokens of "1963"); punctuation's
    tokens do not count (in "Two." over loud noise the word's token had 0.08, the stop after it 0.9)."""
    written: list[tuple[str, list[float], list[float]]] = []  # (text, its letters' and digits' tokens, all)
    for piece, probability in zip(whisper.tokenizer.pieces(decoded.tokens), decoded.probabilities, strict=True):
        said = [probability] if any(c.isalnum() for c in piece) else []  # "." says where a sentence ends, not the word
        if not written or piece.startswith(" "):
            written.append((piece, said, [probability]))
        else:
            text, letters, every = written[-1]
            written[-1] = (text + piece, letters + said, [*every, probability])
    return [(word, float(np.mean(letters or every))) for text, letters, every in written for word in spoken(text).split()]


def align(lattice: np.ndarray, text: str) -> list[int] | None:
    """The frame of ``lattice`` ([frames, vocab] CTC log-probabilities) each character of ``text`` is
    emitted at on the most likely CTC path that spells ``text`` (Viterbi forced alignment); None when the
    lattice is too short to spell it."""
    labels = [ALPHABET.index(c) + 1 for c in text]
    states = np.full(2 * len(labels) + 1, BLANK, np.int64)
    states[1::2] = labels
    frames = len(lattice)
    if frames < len(labels):
        return None
    emit = lattice.astype(np.float32)[:, states]
    skip = np.zeros(len(states), bool)
    skip[3::2] = states[3::2] != states[1:-2:2]  # a letter may follow the previous letter without a blank
    never = np.float32(-1e30)
    score = np.full(len(states), never, np.float32)
    score[:2] = emit[0, :2]
    moves = np.zeros((frames, len(states)), np.int8)
    for t in range(1, frames):
        one = np.concatenate([[never], score[:-1]])
        two = np.where(skip, np.concatenate([[never, never], score[:-2]]), never)
        options = np.stack([score, one, two])
        moves[t] = options.argmax(0)
        score = options.max(0) + emit[t]
    state = len(states) - 1 if len(states) < 2 or score[-1] >= score[-2] else len(states) - 2
    if score[state] <= never / 2:
        return None
    first = [0] * len(labels)
    for t in range(frames - 1, -1, -1):
        if state % 2:
            first[state // 2] = t
        state -= int(moves[t, state])
    return first


class Recognizer:
    """Streams in, segments out. Not thread-safe: one caller (the engine's batch loop, or a CLI)."""

    def __init__(self, model: AcousticModel, endpoint_s: float = 0.8, max_segment_s: float = 30.0,
                 search: SearchSettings = GREEDY, speech_probability: float = 1.0, min_confidence: float = 0.0,
                 punctuate: bool = True, second_pass: bool = True, level_control: bool = True,
                 no_speech: tuple[float, float] = (0.6, -0.4), partial_beam: int = 0,
                 partial_margin: float | None = None, partial_prune: float | None = None,
                 energy_speech: bool = True) -> None:
        self.model = model
        self.no_speech = no_speech
        self.level_control = level_control
        self.whisper = model.whisper if second_pass else None
        self.punctuate = punctuate
        self.energy_speech = energy_speech and level_control and self.whisper is not None
        """Frames the level control finds speech in by their energy count as speech too (the model may not
        answer a soft short word): only with the second pass, whose no-speech rule drops what was noise."""
        self.punctuator = model.punctuator if punctuate else None
        self.speech_probability = speech_probability
        self.min_confidence = min_confidence
        self.endpoint_frames = max(1, round(endpoint_s / model.frame_s))
        self.tail_frames = round(FINAL_TAIL_S / model.frame_s)
        self.max_segment_s = max_segment_s
        self.lm = model.lm if search.beam > 0 else None
        self.search_settings = search
        self.partial_search = replace(search, beam=partial_beam, margin=partial_margin or search.margin,
                                      prune=search.prune if partial_prune is None else partial_prune) \
            if partial_beam > 0 and model.lm is not None else None
        """The partials' beam search (the finals' weights, its own beam, margin and prune); None: partials are
        greedy."""

    @classmethod
    def from_settings(cls, model: AcousticModel, settings: AsrSettings) -> Recognizer:
        return cls(model, settings.endpoint_s, settings.max_segment_s, SearchSettings.of(settings),
                   settings.speech_probability, settings.min_word_confidence, settings.punctuate,
                   settings.second_pass, settings.level_control,
                   (settings.no_speech_threshold, settings.no_speech_logprob), settings.partial_beam,
                   settings.partial_margin, settings.partial_prune, settings.energy_speech)

    def new_stream(self, rate: int, phrases: Phrases | None = None) -> Stream:
        return Stream(rate, Resampler(rate), FeatureStream(), np.zeros((0, N_MELS), np.float32),
                      self.model.initial_memory(), phrases=phrases)

    def accept(self, streams: list[Stream], chunks: list[np.ndarray], ends: list[bool],
               defer_search: bool = False) -> list[list[Segment]]:
        """Feed one chunk (float samples at the stream's rate; may be empty) per stream, all in one batch.
        Returns per stream the segments to report: the partial of the open segment, and finals.
        ``defer_search``: finals keep their greedy text and carry their ``lattice``; the caller runs the
        beam search (elsewhere) and applies it with :meth:`apply_search`."""
        stack = self.model.stack
        ready: list[np.ndarray] = []
        resampled = resample_many([s.resampler for s in streams], chunks)
        levelled = [s.level.push(x, end) for s, x, end in zip(streams, resampled, ends, strict=True)] \
            if self.level_control else resampled
        featured = push_features([s.features for s in streams], levelled)  # one log-mel call for the batch
        for stream, frames, chunk, end, samples in zip(streams, featured, chunks, ends, resampled, strict=True):
            stream.samples_in += len(chunk)
            if self.whisper is not None:
                stream.audio.push(samples)
            if end:
                frames = np.concatenate([frames, stream.features.push(np.zeros(int(TAIL_S * SAMPLE_RATE), np.float32))])
            frames = np.concatenate([stream.pending, frames]) if len(stream.pending) else frames
            if end and len(frames) % stack:
                frames = np.concatenate([frames, frames[-1:]])  # complete the last model frame
            usable = len(frames) - len(frames) % stack
            stream.pending = frames[usable:].copy()  # not a view that keeps the batch's features alive
            ready.append(frames[:usable])
        heard: list[Heard | None] = [None] * len(streams)
        by_length: dict[int, list[int]] = {}
        for i, frames in enumerate(ready):
            if len(frames):
                by_length.setdefault(len(frames), []).append(i)
        for length, rows in by_length.items():  # real-time clients send equal chunks: usually one call
            out = self.model.run([streams[i].memory for i in rows], np.stack([ready[i] for i in rows]))
            best = out.argmax(-1)  # the whole call's frames at once: numpy per stream costs more than the work
            voiced = self._voiced(out, best)
            for row, i in enumerate(rows):
                if self.level_control:  # taken whether used or not: the blocks' flags must not pile up
                    loud = streams[i].level.take_speech(length // stack, stack)
                    if self.energy_speech:
                        voiced[row] |= loud
                voiced[row, :max(0, STARTUP_FRAMES - streams[i].frames_done)] = False
                heard[i] = Heard(out[row], best[row], voiced[row])
        return [self._decode(stream, frames, end, defer_search)
                for stream, frames, end in zip(streams, heard, ends, strict=True)]

    @property
    def keeps_lattice(self) -> bool:
        """A segment's frames are kept for its final: the beam search reads them, the second pass aligns its
        words on them."""
        return self.lm is not None or self.whisper is not None

    @property
    def keeps_frames(self) -> bool:
        """A segment's frames are stored: for its final (:attr:`keeps_lattice`), or to rebuild the partials'
        search after a restore."""
        return self.keeps_lattice or self.partial_search is not None

    def _searching(self, decoder: Decoder) -> Decoder:
        """``decoder`` with the partials' search over its stored frames (a new segment's, or one restored)."""
        if self.partial_search is not None and decoder.search is None:
            assert self.model.lm is not None
            decoder.search = self.model.lm.prefix_search(self.partial_search)
            if decoder.log_probs:
                decoder.search.advance(np.concatenate(decoder.log_probs).astype(np.float32))
        return decoder

    def _voiced(self, log_probs: np.ndarray, best: np.ndarray) -> np.ndarray:
        """Per frame ([..., frames]): speech is heard (see :class:`Decoder`). Soft evidence counts only with
        a beam search to find its words. (A stream's first :data:`STARTUP_FRAMES` never count: the caller.)"""
        voiced = (best != BLANK) & (best != SPACE)
        if self.lm is not None and self.speech_probability < 1.0:
            letters = 1.0 - np.exp(log_probs[..., BLANK]) - np.exp(log_probs[..., SPACE])
            voiced |= letters >= self.speech_probability
        return voiced

    def _decode(self, stream: Stream, heard: Heard | None, end: bool, defer_search: bool) -> list[Segment]:
        frame_s = self.model.frame_s
        segments: list[Segment] = []
        if heard is not None:
            log_probs, best, voiced = heard
            start = 0
            while start < len(best):
                stop = self._endpoint(stream.decoder, voiced, start)
                self._searching(stream.decoder).push(
                    best[start:stop], voiced[start:stop], (stream.frames_done + start) * frame_s, frame_s,
                    log_probs[start:stop] if self.keeps_frames else None)
                position = (stream.frames_done + stop) * frame_s
                speech = stream.decoder.heard
                if speech and stream.decoder.silent_frames >= self.endpoint_frames:
                    segments.append(self._close(stream, position, "endpoint", defer_search))
                elif speech and position - stream.segment_start_s >= self.max_segment_s:
                    segments.append(self._close(stream, position, "max_segment", defer_search))
                elif not speech and stream.decoder.silent_frames >= self.endpoint_frames:
                    self._skip_silence(stream, position)
                start = stop
            stream.frames_done += len(best)
        if end:
            if stream.decoder.heard or not segments:
                segments.append(self._close(stream, stream.frames_done * frame_s, "end_of_stream", defer_search))
        elif stream.decoder.heard or not segments:  # a partial per chunk, empty before any speech
            segments.append(self._segment(stream, final=False, end_s=stream.frames_done * frame_s))
        return segments if defer_search else self.reportable(segments, end)

    def _skip_silence(self, stream: Stream, position: float) -> None:
        """Silence before speech is no segment of its own: the segment starts later, and its stored frames
        but the last :data:`LEAD_FRAMES` are dropped (else a stream silent for an hour keeps them all)."""
        old = stream.decoder
        stream.decoder = Decoder(previous=old.previous, silent_frames=old.silent_frames)
        if old.log_probs:
            lead = np.concatenate(old.log_probs)[-LEAD_FRAMES:]
            stream.decoder.log_probs = [lead]
            stream.decoder.first_time = position - len(lead) * self.model.frame_s
        stream.segment_start_s = position
        stream.audio.drop_before(position - AUDIO_LEAD_S)

    @staticmethod
    def reportable(segments: list[Segment], end: bool) -> list[Segment]:
        """The segments to report once finals are searched: a tentative final that found no words is
        dropped (its segment number is skipped), unless it is a stream's last word on the matter."""
        kept = [s for s in segments if not (s.final and s.tentative and not s.text)]
        return kept if kept or not end else segments[-1:]

    def _endpoint(self, decoder: Decoder, voiced: np.ndarray, start: int) -> int:
        """Index just past the frame where the open segment reaches its endpoint (``endpoint_s`` of unvoiced
        frames after speech), else ``len(voiced)``."""
        silent, speech = decoder.silent_frames, decoder.heard
        for i in range(start, len(voiced)):
            if voiced[i]:
                silent, speech = 0, True
            else:
                silent += 1
                if speech and silent >= self.endpoint_frames:
                    return i + 1
        return len(voiced)

    def _segment(self, stream: Stream, final: bool, end_s: float) -> Segment:
        decoder, frame_s = stream.decoder, self.model.frame_s
        if not decoder.heard:
            words = []
        elif not final and decoder.search is not None:
            words = Decoder.timed(*decoder.search.result(), decoder.first_time or 0.0, frame_s)
        else:
            words = decoder.words(frame_s)
        return Segment(stream.segment, " ".join(w.word for w in words), words, final, stream.segment_start_s, end_s)

    def search(self, lattice: np.ndarray, phrases: Phrases | None = None) -> Searched:
        """The beam search with the language models over one segment's log-probabilities."""
        assert self.lm is not None
        return self.lm.search(lattice, self.search_settings, phrases)

    def second_pass(self, segments: list[Segment]) -> list[Searched | Decoded]:
        """What each final owing one gets here in the batch loop (the worker runs
        :func:`workers.asr.finals.second_pass` in its search processes instead)."""
        return second_pass(self.whisper, self.lm, self.search_settings, [owed(s) for s in segments])

    def apply_second_pass(self, segment: Segment, found: Searched | Decoded) -> None:
        if isinstance(found, Decoded):
            self.apply_decoded(segment, found)
        else:
            self.apply_search(segment, found)

    def apply_decoded(self, segment: Segment, decoded: Decoded) -> None:
        """Replace a final's greedy text by the attention decoder's: ``text`` its spoken words (numbers read
        out), ``display`` Whisper's written form, each word timed by aligning the text on the streaming
        model's frames and scored by the decoder's token probabilities. A final the decoder heard nothing in
        (no text, or :meth:`Decoded.heard_nothing` by ``no_speech``) becomes tentative (not reported unless it
        ends the stream)."""
        assert self.whisper is not None
        frame_s = self.model.frame_s
        scored = [] if decoded.heard_nothing(*self.no_speech) else word_confidences(self.whisper, decoded)
        text = " ".join(word for word, _ in scored)
        frames = align(segment.lattice, text) if segment.lattice is not None and text else None
        if frames is not None:
            segment.words = Decoder.timed(text, frames, segment.lattice_start_s, frame_s)
        else:  # no frames to align on: the words share the segment's span evenly
            step = (segment.end_s - segment.start_s) / max(1, len(scored))
            segment.words = [Word(w, segment.start_s + i * step, segment.start_s + (i + 1) * step)
                             for i, (w, _) in enumerate(scored)]
        for word, (_, confidence) in zip(segment.words, scored, strict=True):
            word.confidence = confidence
        kept = [w for w in segment.words if w.confidence >= self.min_confidence]
        segment.display = decoded.text if len(kept) == len(segment.words) and kept else None
        if segment.phrases is not None:  # a word outside the list: [unk] in an open list, dropped from a closed one
            vocabulary = segment.phrases.vocabulary
            for word in kept:
                if word.word not in vocabulary:
                    word.word = Phrases.UNKNOWN
            if not segment.phrases.open:
                kept = [w for w in kept if w.word != Phrases.UNKNOWN]
        segment.words = kept
        segment.text = " ".join(w.word for w in kept)
        segment.tentative = segment.tentative or not kept
        segment.lattice = segment.audio = None

    def apply_search(self, segment: Segment, found: Searched) -> None:
        """Replace a final's greedy text and words by what its beam search found, each word with its
        confidence; words below ``min_confidence`` are dropped. With an open phrase list a word outside it
        becomes ``[unk]``."""
        frame_s = self.model.frame_s
        segment.words = Decoder.timed(found.text, found.frames, segment.lattice_start_s, frame_s)
        if segment.lattice is not None:
            for word, confidence in zip(segment.words, confidences(segment.lattice, found.text, found.frames),
                                        strict=True):
                word.confidence = confidence
            segment.words = [w for w in segment.words if w.confidence >= self.min_confidence]
        if segment.phrases is not None:
            vocabulary = segment.phrases.vocabulary
            for word in segment.words:
                if word.word not in vocabulary:
                    word.word = Phrases.UNKNOWN
        segment.text = " ".join(w.word for w in segment.words)
        segment.lattice = None

    def display(self, segment: Segment) -> str | None:
        """A final's words written with casing and punctuation (once its search is applied); None for a
        partial, or without a tagger. Partials stay lower case: a tagger that sees half a sentence would
        change its mind with every chunk."""
        if not segment.final or not self.punctuate:
            return None
        if segment.display is not None:
            return segment.display
        if self.punctuator is None:
            return None
        return self.punctuator.display([w.word for w in segment.words])

    def _second_pass_audio(self, stream: Stream, speech_end: int, end_s: float = math.inf) -> np.ndarray:
        """The open segment's audio its final's second pass reads: from just before the segment's start to
        :data:`FINAL_TAIL_S` past its speech (or ``end_s``, where the segment ends sooner). The one place both
        an early pass and the final take it, so that they read the same."""
        tail_s = (speech_end + self.tail_frames) * self.model.frame_s
        return stream.audio.take(stream.segment_start_s - AUDIO_LEAD_S, min(end_s, tail_s))

    def speech_ended(self, stream: Stream, after_s: float = FINAL_TAIL_S) -> tuple[int, int] | None:
        """``(segment, speech end frame)`` of a stream's open segment once ``after_s`` of silence (at least
        :data:`FINAL_TAIL_S`) has followed its speech: all the audio its final's second pass will read is
        here, and the pass may start before the endpoint (:meth:`early_second_pass`). None before that, or
        without the attention decoder."""
        decoder = stream.decoder
        waited = max(self.tail_frames, round(after_s / self.model.frame_s))
        if self.whisper is None or not decoder.heard or decoder.silent_frames < waited:
            return None
        return stream.segment, stream.frames_done - decoder.silent_frames

    def early_second_pass(self, stream: Stream, speech_end: int) -> Owed:
        """What the open segment's final will owe its second pass, if no speech follows: the same audio."""
        return Owed(None, stream.phrases, self._second_pass_audio(stream, speech_end))

    def _close(self, stream: Stream, end_s: float, reason: str, defer_search: bool) -> Segment:
        decoder = stream.decoder
        segment = self._segment(stream, final=True, end_s=end_s)
        segment.reason = reason
        segment.tentative = decoder.heard and not decoder.has_speech
        if self.keeps_lattice and decoder.log_probs and decoder.heard:
            segment.lattice = np.concatenate(decoder.log_probs)
            segment.lattice_start_s = decoder.first_time or 0.0
            segment.phrases = stream.phrases
            if self.whisper is not None:
                segment.speech_end = round(end_s / self.model.frame_s) - decoder.silent_frames
                segment.audio = self._second_pass_audio(stream, segment.speech_end, end_s)
            if not defer_search:
                self.apply_second_pass(segment, self.second_pass([segment])[0])
        stream.audio.drop_before(end_s - AUDIO_LEAD_S)
        stream.segment += 1
        stream.segment_start_s = end_s
        stream.decoder = Decoder()
        return segment
