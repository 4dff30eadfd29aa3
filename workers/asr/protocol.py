"""Wire protocol ``asr/1`` (docs/asr-protocol.md): audio chunks in, transcript segments out.

Chunk on ``asr.audio``: key = stream id (UTF-8, 1-256 bytes), value = raw PCM16 little-endian mono
samples (no container, no base64), headers (ASCII):

- ``sample_rate`` (required): Hz, 8000..96000; resampled to the model's 16 kHz. Fixed for a stream.
- ``seq`` (required): 0, 1, 2, ... per stream; ``seq`` 0 starts (or restarts) a stream.
- ``end`` (optional): ``1`` marks the last chunk (its payload may be empty).
- ``protocol`` (optional): ``1``.
- ``phrases`` (optional): a JSON array of strings (UTF-8), what the stream may say: its finals use only
  these phrases' words (``"[unk]"`` in the list admits other words, reported as ``[unk]``). It holds from
  the chunk that carries it until another replaces it; send it on every chunk to keep it across a worker
  restart (a stream resumed on fresh state knows only what its chunks carry).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from workers.asr.lm import Phrases
from workers.engine.handler import InvalidMessage
from workers.transport.records import Headers, Record

PROTOCOL = "1"
MIN_RATE, MAX_RATE = 8_000, 96_000
MAX_STREAM_ID = 256
MAX_PHRASES_BYTES = 32_768


@dataclass(frozen=True, slots=True)
class Chunk:
    stream_id: str
    seq: int
    sample_rate: int
    pcm: bytes
    end: bool
    phrases: Phrases | None = None

    @property
    def samples(self) -> int:
        return len(self.pcm) // 2

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate


def chunk_headers(seq: int, sample_rate: int, end: bool = False, phrases: list[str] | None = None) -> Headers:
    """Headers of one chunk, for producers (``workers mic``, ``workers replay asr``, tests)."""
    headers = [("protocol", PROTOCOL.encode()), ("sample_rate", str(sample_rate).encode()), ("seq", str(seq).encode())]
    if end:
        headers.append(("end", b"1"))
    if phrases is not None:
        headers.append(("phrases", json.dumps(phrases).encode()))
    return headers


@functools.lru_cache(maxsize=256)
def _phrases(raw: bytes) -> Phrases:
    """A ``phrases`` header -> :class:`Phrases` (remembered: clients send the same list on every chunk)."""
    if len(raw) > MAX_PHRASES_BYTES:
        raise InvalidMessage("bad_phrases", f"header 'phrases' of {len(raw)} bytes > {MAX_PHRASES_BYTES}")
    try:
        items = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise InvalidMessage("bad_phrases", f"header 'phrases' is not JSON (UTF-8): {raw[:40]!r}") from None
    if not isinstance(items, list):
        raise InvalidMessage("bad_phrases", "header 'phrases' must be a JSON array of strings")
    try:
        return Phrases.parse(items)
    except ValueError as exc:
        raise InvalidMessage("bad_phrases", f"header 'phrases': {exc}") from None


def _integer(record: Record, name: str) -> int:
    raw = record.header(name)
    if raw is None:
        raise InvalidMessage("missing_header", f"header {name!r} is required (protocol asr/{PROTOCOL})")
    try:
        text = raw.decode("ascii")
        if not text.isdigit():
            raise ValueError(text)
        return int(text)
    except (UnicodeDecodeError, ValueError):
        raise InvalidMessage("bad_header", f"header {name!r} must be a non-negative decimal integer, got {raw[:32]!r}") from None


def parse_chunk(record: Record, max_chunk_s: float) -> Chunk:
    """A record -> :class:`Chunk`, or :class:`InvalidMessage` with a DLQ reason."""
    protocol = record.header("protocol")
    if protocol is not None and protocol != PROTOCOL.encode():
        raise InvalidMessage("unsupported_protocol", f"protocol {protocol[:16]!r}; this worker speaks {PROTOCOL}")
    if not record.key:
        raise InvalidMessage("missing_key", "the record key must be the stream id (it keeps a stream's chunks in order)")
    try:
        stream_id = record.key.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidMessage("invalid_utf8", "the stream id (record key) is not UTF-8") from None
    if len(record.key) > MAX_STREAM_ID:
        raise InvalidMessage("field_too_long", f"stream id of {len(record.key)} bytes > {MAX_STREAM_ID}")
    rate = _integer(record, "sample_rate")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InvalidMessage("unsupported_sample_rate", f"sample_rate {rate} Hz; supported {MIN_RATE}..{MAX_RATE}")
    seq = _integer(record, "seq")
    end_raw = record.header("end")
    if end_raw not in (None, b"0", b"1"):
        raise InvalidMessage("bad_header", f"header 'end' must be 0 or 1, got {end_raw[:16]!r}")
    end = end_raw == b"1"
    pcm = record.value or b""
    if len(pcm) % 2:
        raise InvalidMessage("bad_audio", f"{len(pcm)} bytes: PCM16 needs an even number of bytes")
    if not pcm and not end:
        raise InvalidMessage("empty_chunk", "a chunk without samples must be the end of its stream (end: 1)")
    raw_phrases = record.header("phrases")
    chunk = Chunk(stream_id, seq, rate, pcm, end, _phrases(raw_phrases) if raw_phrases is not None else None)
    if chunk.duration_s > max_chunk_s:
        raise InvalidMessage("chunk_too_long", f"{chunk.duration_s:.2f} s of audio in one chunk > {max_chunk_s} s")
    return chunk
