"""Kafka-side ASR clients: ``workers mic`` (a microphone or a WAV file in real time, transcript shown as it
updates) and ``workers replay asr`` (N concurrent real-time streams, partial/final latency measured)."""

from __future__ import annotations

import json
import math
import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from workers.asr.audio import float_to_pcm16, read_audio
from workers.asr.handler import AsrHandler
from workers.asr.protocol import chunk_headers
from workers.settings import KafkaSettings
from workers.transport.base import Producer
from workers.transport.factory import make_producer, make_reader
from workers.transport.records import OutgoingRecord

AUDIO_TOPIC, TRANSCRIPT_TOPIC = AsrHandler.input_topic, AsrHandler.output_topic


def wav_chunks(path: str | Path, chunk_s: float, realtime: bool = True) -> tuple[int, Iterator[np.ndarray]]:
    """(rate, chunks) of a file; with ``realtime`` each chunk is yielded when it would have been spoken."""
    audio, rate = read_audio(path)
    step = max(1, int(round(chunk_s * rate)))

    def chunks() -> Iterator[np.ndarray]:
        start = time.monotonic()
        for n, i in enumerate(range(0, len(audio), step)):
            if realtime:
                time.sleep(max(0.0, start + (n + 1) * chunk_s - time.monotonic()))
            yield audio[i:i + step]

    return rate, chunks()


def microphone_chunks(rate: int, chunk_s: float, device: str | int | None = None) -> Iterator[np.ndarray]:
    """Live capture with ``sounddevice`` (needs PortAudio) until Ctrl-C."""
    try:
        import sounddevice
    except (ImportError, OSError) as exc:
        raise SystemExit(f"live capture needs sounddevice and PortAudio ({exc}); "
                         "pip install sounddevice; apt-get install libportaudio2 (or brew install portaudio). "
                         "--wav FILE streams a file instead") from None
    captured: queue.Queue[np.ndarray] = queue.Queue()
    with sounddevice.InputStream(samplerate=rate, channels=1, dtype="float32", device=device,
                                 blocksize=int(rate * chunk_s), callback=lambda data, *_: captured.put(data[:, 0].copy())):
        try:
            while True:
                yield captured.get()
        except KeyboardInterrupt:
            return


class TranscriptReader:
    """Reads ``asr.transcripts`` from its current end on a thread; ``on_result(result, received_at)``."""

    def __init__(self, kafka: KafkaSettings, on_result: Callable[[dict[str, Any], float], None],
                 keys: Callable[[str], bool], topic: str = TRANSCRIPT_TOPIC) -> None:
        self._consumer = make_reader(kafka, [topic], at_end=True, client_id="workers-asr-client")
        self._on_result, self._keys = on_result, keys
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="transcripts", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for record in self._consumer.poll(0.1, 500):
                now = time.time()
                if record.key and self._keys(record.key.decode("utf-8", "replace")):
                    self._on_result(json.loads(record.value or b"{}"), now)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


class ChunkSender:
    """Produces one stream's chunks (protocol asr/1); remembers when each ``seq`` was sent. ``phrases`` goes
    with every chunk, so a worker that lost the stream's state (restart, rebalance) still has it."""

    def __init__(self, producer: Any, stream_id: str, rate: int, topic: str = AUDIO_TOPIC,
                 phrases: list[str] | None = None) -> None:
        self.producer, self.stream_id, self.rate, self.topic = producer, stream_id, rate, topic
        self.phrases = phrases
        self.seq = 0
        self.sent_at: dict[int, float] = {}

    def send(self, chunk: np.ndarray, end: bool = False) -> None:
        self.sent_at[self.seq] = time.time()
        record = OutgoingRecord(self.topic, float_to_pcm16(chunk), self.stream_id.encode(),
                                chunk_headers(self.seq, self.rate, end, self.phrases))
        self.producer.produce(record, _raise_on_error)
        self.producer.poll()
        self.seq += 1


class LevelMeter:
    """The input level a speaker sees in ``workers mic``: RMS and peak in dBFS per chunk, and a warning when
    the last ``window_s`` of input stayed very quiet (a laptop mic at low gain: speech there was lost) or a
    chunk clipped. ``update`` returns the warning when it changes (None when nothing new to say)."""

    QUIET_DBFS = -50.0
    CLIP_PEAK = 0.99

    def __init__(self, rate: int, window_s: float = 3.0) -> None:
        self.window_s = window_s
        self.window = max(1, int(rate * window_s))
        self._energy: list[tuple[float, int]] = []  # per chunk: (sum of squares, samples), the last window_s
        self.rms_dbfs = -120.0
        self.peak = 0.0
        self.warning: str | None = None

    def update(self, chunk: np.ndarray) -> str | None:
        chunk = np.asarray(chunk, np.float32)
        if not chunk.size:
            return None
        energy = float(np.dot(chunk, chunk))
        self.rms_dbfs = _dbfs(energy / chunk.size)
        self.peak = float(np.abs(chunk).max())
        self._energy.append((energy, chunk.size))
        while sum(n for _, n in self._energy) - self._energy[0][1] >= self.window:
            self._energy.pop(0)
        samples = sum(n for _, n in self._energy)
        window_dbfs = _dbfs(sum(e for e, _ in self._energy) / samples)
        if self.peak >= self.CLIP_PEAK:
            warning = "input clipping: lower the microphone gain"
        elif samples >= self.window and window_dbfs < self.QUIET_DBFS:
            warning = (f"input very quiet ({window_dbfs:.0f} dBFS over the last {self.window_s:g} s): raise the "
                       "microphone gain or move closer")
        else:
            warning = None
        changed = warning != self.warning
        self.warning = warning
        return warning if changed and warning else None

    def bar(self, width: int = 10) -> str:
        """``[#####.....  -32 dBFS]``: -60 dBFS empty, 0 dBFS full."""
        filled = int(round(min(1.0, max(0.0, (self.rms_dbfs + 60) / 60)) * width))
        return f"[{'#' * filled}{'.' * (width - filled)} {self.rms_dbfs:4.0f} dBFS]"


def _dbfs(mean_square: float) -> float:
    return 10 * math.log10(max(mean_square, 1e-12))


def _raise_on_error(error: Exception | None, _acked_at: float) -> None:
    if error is not None:
        raise RuntimeError(f"audio chunk not delivered: {error}")


def run_mic(kafka: KafkaSettings, source: Iterator[np.ndarray], rate: int, stream_id: str | None = None,
            out: TextIO = sys.stdout, final_timeout_s: float = 15.0, topics: tuple[str, str] = (AUDIO_TOPIC, TRANSCRIPT_TOPIC),
            on_result: Callable[[dict[str, Any]], None] | None = None,
            phrases: list[str] | None = None, level: bool = False) -> list[dict[str, Any]]:
    """Stream ``source`` as one stream; show the partial in place and each final on its own line.
    Returns the finals (after end of stream). ``phrases``: what the speaker may say (protocol header).
    The input level is watched: a very quiet or clipping input is reported on stderr; ``level`` also
    shows a live meter before the partial (on a terminal)."""
    stream_id = stream_id or f"mic-{uuid.uuid4().hex[:8]}"
    finals: list[dict[str, Any]] = []
    done = threading.Event()
    tty = out.isatty()
    meter = LevelMeter(rate)
    partial = [""]  # the open segment's text, shown after the level meter on a terminal

    def redraw() -> None:
        print("\r\033[K" + (meter.bar() + " " if level else "") + partial[0] + " …", end="", file=out, flush=True)

    def show(result: dict[str, Any], _at: float) -> None:
        if on_result is not None:
            on_result(result)
        if result.get("type") == "final":
            partial[0] = ""
            if result.get("text"):
                finals.append(result)
                print(("\r\033[K" if tty else "") + result.get("display", result["text"]), file=out, flush=True)
            if result.get("end_of_stream"):
                done.set()
        elif tty:
            partial[0] = result.get("text", "")
            redraw()

    reader = TranscriptReader(kafka, show, lambda key: key == stream_id, topics[1])
    producer = make_producer(kafka, client_id="workers-mic")
    try:
        sender = ChunkSender(producer, stream_id, rate, topics[0], phrases)
        for chunk in source:
            warning = meter.update(chunk)
            if warning:
                print(("\r\033[K" if tty else "") + f"[level] {warning}", file=sys.stderr, flush=True)
            if level and tty:
                redraw()
            sender.send(chunk)
        sender.send(np.zeros(0, np.float32), end=True)
        producer.flush(10)
        if not done.wait(final_timeout_s):
            print(f"no end-of-stream final within {final_timeout_s:.0f} s (is `workers serve asr` running?)",
                  file=sys.stderr)
    finally:
        producer.close()
        reader.close()
    return finals


@dataclass
class ReplayStats:
    partial_latency_s: list[float] = field(default_factory=list)
    final_latency_s: list[float] = field(default_factory=list)
    results: int = 0
    finals: int = 0
    answered: set[tuple[str, int]] = field(default_factory=set)  # (stream id, seq) with at least one result


def replay(kafka: KafkaSettings, files: list[str], streams: int, seconds: float, chunk_s: float = 0.16,
           drain_s: float = 15.0, topics: tuple[str, str] = (AUDIO_TOPIC, TRANSCRIPT_TOPIC),
           keep_samples: bool = False, producer: Producer | None = None, pause_s: float = 0.0) -> dict[str, Any]:
    """``streams`` concurrent real-time streams, each cycling through ``files`` (one file = one stream
    session ending with ``end``, after ``pause_s`` of silence) for ``seconds``. Latency = chunk produced -> its
    result read back; a final's counts only when it has words (with a pause, the stream's end closes an empty one).
    ``keep_samples`` adds every latency (``samples``), for plots. ``producer``: one already used (left
    open): a new idempotent producer holds its first records ~0.5 s while it gets its producer id, which
    would show as a start-up spike in the latencies."""
    audio = [(np.concatenate([signal, np.zeros(int(pause_s * rate), signal.dtype)]), rate)
             for signal, rate in map(read_audio, files)]
    tag = uuid.uuid4().hex[:6]
    stats = ReplayStats()
    senders: dict[str, ChunkSender] = {}
    lock = threading.Lock()

    def on_result(result: dict[str, Any], received_at: float) -> None:
        sender = senders.get(result.get("stream_id", ""))
        sent = sender.sent_at.get(result.get("seq", -1)) if sender else None
        if sent is None:
            return
        final = result["type"] == "final"
        with lock:
            stats.results += 1
            if not final:
                stats.partial_latency_s.append(received_at - sent)
            elif result["text"]:
                stats.final_latency_s.append(received_at - sent)
                stats.finals += 1
            stats.answered.add((result["stream_id"], result["seq"]))

    reader = TranscriptReader(kafka, on_result, lambda key: key.startswith(f"replay-{tag}-"), topics[1])
    own_producer = producer is None
    producer = producer or make_producer(kafka, client_id="workers-replay")
    cursors = [[i % len(audio), 0, 0] for i in range(streams)]  # file index, sample position, session number
    started = time.monotonic()
    sent_audio_s = 0.0
    tick = 0
    try:
        while time.monotonic() - started < seconds:
            for s, cursor in enumerate(cursors):
                index, position, session = cursor
                signal, rate = audio[index]
                stream_id = f"replay-{tag}-{s}-{session}"
                sender = senders.get(stream_id) or senders.setdefault(stream_id, ChunkSender(producer, stream_id, rate, topics[0]))
                step = int(round(chunk_s * rate))
                chunk = signal[position:position + step]
                end = position + step >= len(signal)
                sender.send(chunk, end=end)
                sent_audio_s += len(chunk) / rate
                cursor[1] = position + step
                if end:
                    cursor[:] = [(index + 1) % len(audio), 0, session + 1]
            tick += 1
            time.sleep(max(0.0, started + tick * chunk_s - time.monotonic()))
        producer.flush(30)
        deadline = time.monotonic() + drain_s
        expected = sum(s.seq for s in senders.values())
        while time.monotonic() < deadline and len(stats.answered) < expected * 0.99:
            time.sleep(0.2)
    finally:
        if own_producer:
            producer.close()
        reader.close()
    elapsed = time.monotonic() - started

    def summary(values: list[float]) -> dict[str, float | None]:
        if not values:
            return {"count": 0, "avg": None, "p50": None, "p90": None, "p95": None, "p99": None}
        v = np.array(values)
        return {"count": len(v), "avg": round(float(v.mean()), 4),
                **{f"p{q}": round(float(np.percentile(v, q)), 4) for q in (50, 90, 95, 99)}}

    report = {"streams": streams, "chunk_s": chunk_s, "seconds": round(elapsed, 1),
              "audio_s_sent": round(sent_audio_s, 1), "chunks_sent": sum(s.seq for s in senders.values()),
              "chunks_answered": len(stats.answered), "results": stats.results, "finals": stats.finals,
              "partial_latency_s": summary(stats.partial_latency_s), "final_latency_s": summary(stats.final_latency_s)}
    if keep_samples:
        report["samples"] = {"partial_latency_s": stats.partial_latency_s, "final_latency_s": stats.final_latency_s}
    return report
