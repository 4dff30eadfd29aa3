"""``workers transcribe``: files through the worker's streaming path (chunks, batching, endpointing),
without Kafka. Up to ``batch`` files go in lockstep, as concurrent streams do in the worker."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workers.asr.audio import read_audio
from workers.asr.lm import Phrases
from workers.asr.recognizer import Recognizer, Segment

CHUNK_S = 0.16


@dataclass
class _File:
    path: str
    audio: np.ndarray
    rate: int
    position: int = 0
    finals: list[Segment] = field(default_factory=list)
    partials: dict[int, str] = field(default_factory=dict)  # segment -> its last partial's text


def transcribe(paths: Iterable[str | Path], recognizer: Recognizer, chunk_s: float = CHUNK_S,
               batch: int = 32, phrases: Phrases | None = None, pause_s: float = 0.0) -> Iterator[dict[str, Any]]:
    """One result per file, in order: ``file``, ``text`` (the finals joined), ``display`` (the same with
    casing and punctuation, when the model ships a tagger), ``segments``, ``audio_s``, and ``partials``: each
    segment's last partial before its final, joined (what a listener saw just before the final came).
    ``phrases``: every file's phrase list (finals only; see :class:`workers.asr.lm.Phrases`). ``pause_s``:
    silence sent after each file's audio before its end, as a speaker pauses (a segment then ends at its
    endpoint, after partials that heard all of it)."""
    pending = list(paths)
    for start in range(0, len(pending), batch):
        files = []
        for path in pending[start:start + batch]:
            audio, rate = read_audio(path)
            if pause_s:
                audio = np.concatenate([audio, np.zeros(int(pause_s * rate), audio.dtype)])
            files.append(_File(str(path), audio, rate))
        streams = [recognizer.new_stream(f.rate, phrases) for f in files]
        active = list(range(len(files)))
        while active:
            chunks, ends = [], []
            for i in active:
                f = files[i]
                step = max(1, int(round(chunk_s * f.rate)))
                chunks.append(f.audio[f.position:f.position + step])
                f.position += step
                ends.append(f.position >= len(f.audio))
            produced = recognizer.accept([streams[i] for i in active], chunks, ends)
            for i, segments in zip(active, produced, strict=True):
                files[i].finals += [s for s in segments if s.final and s.text]
                files[i].partials.update((s.index, s.text) for s in segments if not s.final)
            active = [i for i, end in zip(active, ends, strict=True) if not end]
        for f in files:
            segments = [{"text": s.text, "start_s": round(s.start_s, 3), "end_s": round(s.end_s, 3),
                         "words": [w.as_dict() for w in s.words]} for s in f.finals]
            result: dict[str, Any] = {"file": f.path, "text": " ".join(s.text for s in f.finals)}
            if recognizer.punctuator is not None or recognizer.whisper is not None:
                for segment, final in zip(segments, f.finals, strict=True):
                    segment["display"] = recognizer.display(final)
                result["display"] = " ".join(s["display"] for s in segments if s["display"])
            partials = " ".join(text for _, text in sorted(f.partials.items()) if text)
            yield result | {"segments": segments, "partials": partials, "audio_s": round(len(f.audio) / f.rate, 3)}
