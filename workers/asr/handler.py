"""Speech recognition worker: ``asr.audio`` (PCM16 chunks, protocol asr/1) -> ``asr.transcripts``.

Transcript (key = stream id)::

    {"stream_id": "mic-1", "seq": 17, "type": "partial" | "final", "segment": 0, "text": "ten of clubs",
     "words": [{"word": "ten", "start_s": 0.42, "end_s": 0.6}, ...], "start_s": 0.0, "end_s": 1.8,
     "audio_s": 1.8, "reason": "endpoint", "end_of_stream": false, "model_version": "...",
     "latency": {"event_to_result_ms": ..., "received_to_result_ms": ..., "inference_ms": ...}}

One chunk per stream per batch (chunks of a stream are applied in order); the chunks of all streams in a
batch go through the acoustic model in one call. Each chunk yields the partial of the open segment, and
a final whenever a segment ends (endpoint, segment too long, end of stream). A final's beam search runs
in a separate process (``search_processes``): the chunk's results are sent when it is done, the rest
of the batch does not wait for it, and the stream's later results queue behind it. A duplicate chunk (``seq``
already seen, e.g. redelivered after a restart) is skipped; a gap is filled with silence and reported
(``gap_chunks``); a stream whose state is gone (restart, rebalance, expiry) resumes with fresh state
from the chunk that arrives (``resumed: true``).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from workers.asr import metrics
from workers.asr.audio import FeatureStream, Resampler, pcm16_to_float
from workers.asr.level import LevelControl
from workers.asr.lm import Phrases
from workers.asr.finals import FinalsPool, SearchDone
from workers.asr.protocol import Chunk, parse_chunk
from workers.asr.recognizer import AcousticModel, Decoder, Recognizer, Segment, SegmentAudio, Stream, Word, owed
from workers.asr.settings import AsrSettings
from workers.toolkit.codec import encode_json
from workers.toolkit.snapshot import SnapshotCodec
from workers.engine.handler import Deferred, InvalidMessage, Outcome, Owed, Pending, Result, StatefulHandler
from workers.settings import Settings
from workers.transport.records import Record

log = logging.getLogger(__name__)
MAX_GAP_FILL_S = 5.0
ENDED_STREAMS_REMEMBERED = 10_000


@dataclass(slots=True)
class StreamState:
    stream: Stream
    next_seq: int
    resumed: bool


@dataclass(frozen=True, slots=True)
class ChunkContext:
    """What a chunk's results say about their stream, fixed when the chunk is applied (a deferred final
    is encoded later, when the stream may have moved on)."""

    stream_id: str
    seq: int
    audio_s: float
    resumed: bool
    gap: int = 0


STREAM_CODEC = SnapshotCodec(StreamState, Stream, Resampler, FeatureStream, LevelControl, Decoder, Word, SegmentAudio,
                             Phrases)
"""A stream's whole state (model caches, front end, decoder, the open segment's audio) in the changelog."""


class AsrHandler(StatefulHandler[Chunk]):
    name = "asr"
    input_topic = "asr.audio"
    output_topic = "asr.transcripts"
    one_per_key = True
    state_belongs_to_model = True  # caches and GRU state of one model version mean nothing to another
    state_codec = STREAM_CODEC
    state_write_interval_s = 1.0  # a stream changes every chunk and carries its segment's audio: one record a second

    def __init__(self, model_dir: str | Path, settings: Settings) -> None:
        self.settings = settings.of(AsrSettings)
        self.acoustic = AcousticModel(model_dir, settings.onnx)
        self.model = self.acoustic.onnx
        self.recognizer = Recognizer.from_settings(self.acoustic, self.settings)
        self.finals: FinalsPool | None = None
        if self.recognizer.keeps_lattice and self.settings.search_processes:
            self.finals = FinalsPool(self.acoustic.model_dir, self.settings.search_processes,
                                     self.recognizer.search_settings, self.settings.busy_beam,
                                     self.settings.search_backlog, self.settings.search_nice,
                                     self.recognizer.whisper is not None, self.settings.second_pass_batch,
                                     settings.engine.gc_young_threshold)
        self.streams = self.init_state(self._no_factory, settings.engine.state_ttl_s, self.settings.max_streams)
        self.ended: OrderedDict[str, int] = OrderedDict()  # stream id -> last seq, for late chunks after the end
        self._chunks = {o: metrics.CHUNKS.labels(worker=self.name, outcome=o)
                        for o in ("accepted", "duplicate", "gap_filled")}
        self._audio = metrics.AUDIO.labels(worker=self.name)
        self.early: OrderedDict[str, tuple[tuple[int, int, Phrases | None], Future[SearchDone]]] = OrderedDict()
        """Stream id -> the second pass started for its open segment when its speech ended ((segment, speech end
        frame, phrase list), the pass): the final uses it if nothing changed since (:meth:`_start_early`)."""
        self._early = {o: metrics.EARLY_SECOND_PASSES.labels(worker=self.name, outcome=o)
                       for o in ("used", "discarded")}

    @staticmethod
    def _no_factory() -> StreamState:
        raise AssertionError("streams are created with put(), never on lookup")

    @property
    def version(self) -> str:
        return self.acoustic.version

    def warmup(self, runs: int) -> None:
        self.acoustic.warmup(runs)
        if self.finals is not None:
            self.finals.warmup()
        Resampler(44_100).push(np.zeros(4410, np.float32))  # imports scipy.signal now, not on the first stream

    def decode(self, record: Record) -> tuple[str, Chunk]:
        chunk = parse_chunk(record, self.settings.max_chunk_s)
        return chunk.stream_id, chunk

    def _admit(self, item: Pending[Chunk]) -> tuple[StreamState, np.ndarray, bool, int] | InvalidMessage | None:
        """(stream state, audio to feed, whether the stream ends, chunks missing before it), None for a
        duplicate, or why the chunk is refused."""
        chunk = item.value
        state: StreamState | None = self.streams.lookup(chunk.stream_id, item.record.partition)
        if state is None or chunk.seq == 0 and state.next_seq > 0:
            last = self.ended.get(chunk.stream_id)
            if chunk.seq > 0 and last is not None:
                if chunk.seq <= last:
                    self._chunks["duplicate"].inc()
                    return None
                return InvalidMessage("stream_ended", f"stream {chunk.stream_id!r} ended at seq {last}; "
                                      "send seq 0 to start it again")
            if state is None and len(self.streams) >= self.settings.max_streams:
                return InvalidMessage("too_many_streams", f"{len(self.streams)} streams open (max_streams)")
            self.ended.pop(chunk.stream_id, None)
            state = StreamState(self.recognizer.new_stream(chunk.sample_rate), chunk.seq, resumed=chunk.seq > 0)
            if state.resumed:
                log.info("%s: stream %r resumes at seq %d (%s[%d]@%d) on fresh state", self.name, chunk.stream_id,
                         chunk.seq, item.record.topic, item.record.partition, item.record.offset)
            self.streams.put(chunk.stream_id, item.record.partition, state)
        if chunk.sample_rate != state.stream.rate:
            return InvalidMessage("rate_changed", f"sample_rate {chunk.sample_rate} Hz; the stream started at "
                                  f"{state.stream.rate} Hz")
        if chunk.seq < state.next_seq:
            self._chunks["duplicate"].inc()
            return None
        if chunk.phrases is not None:
            state.stream.phrases = chunk.phrases
        audio = pcm16_to_float(chunk.pcm)
        gap = chunk.seq - state.next_seq
        if gap:
            per_chunk = max(chunk.samples, 1)
            silence = np.zeros(min(gap * per_chunk, int(MAX_GAP_FILL_S * chunk.sample_rate)), np.float32)
            audio = np.concatenate([silence, audio])
            self._chunks["gap_filled"].inc(gap)
        self._chunks["accepted"].inc()
        state.next_seq = chunk.seq + 1
        end = chunk.end or state.stream.audio_s + len(audio) / chunk.sample_rate >= self.settings.max_stream_s
        return state, audio, end, gap

    def process(self, batch: list[Pending[Chunk]]) -> list[Outcome]:
        outcomes: list[Outcome] = [[] for _ in batch]
        admitted: list[tuple[int, StreamState, np.ndarray, bool, int]] = []
        for i, item in enumerate(batch):
            verdict = self._admit(item)
            if isinstance(verdict, InvalidMessage):
                outcomes[i] = verdict
            elif verdict is not None:
                admitted.append((i, *verdict))
        if not admitted:
            return outcomes
        segments = self.recognizer.accept([a[1].stream for a in admitted], [a[2] for a in admitted],
                                          [a[3] for a in admitted], defer_search=self.finals is not None)
        inference_s = self.model.last_run_s
        for (i, state, audio, end, gap), produced in zip(admitted, segments, strict=True):
            item = batch[i]
            self._audio.inc(len(audio) / state.stream.rate)
            if end and not item.value.end and produced:
                produced[-1].reason = "max_duration"  # the stream hit max_stream_s, not its own end
            context = ChunkContext(item.value.stream_id, item.value.seq, state.stream.audio_s, state.resumed, gap)
            search = self._search(produced, item.value.stream_id)
            if search is not None:
                outcomes[i] = Deferred(search, partial(self._finish, item, context, produced, end, inference_s))
            else:
                outcomes[i] = self._results(item, context, produced, end, inference_s)
            if not end:
                self._start_early(item.value.stream_id, state.stream)
            else:
                self._drop_early(item.value.stream_id)
                self.streams.pop(item.value.stream_id)
                self.ended[item.value.stream_id] = item.value.seq
                while len(self.ended) > ENDED_STREAMS_REMEMBERED:
                    self.ended.popitem(last=False)
        self.report_state()
        return outcomes

    def _results(self, item: Pending[Chunk], context: ChunkContext, produced: list[Segment], end: bool,
                 inference_s: float, extra_latency: dict | None = None) -> list[Result]:
        latency = item.latency_fields(inference_s) | (extra_latency or {})
        reported = self.recognizer.reportable(produced, end)
        return [self._emit(context, segment, end and n == len(reported) - 1, latency)
                for n, segment in enumerate(reported)]

    def _search(self, produced: list[Segment], stream_id: str) -> Future[SearchDone] | None:
        """The second pass of the finals among ``produced`` that still owe one: the one started when the
        segment's speech ended, if it read what the final owes, else one submitted to the search processes
        now; None when none owes one, or when finals are searched in the batch loop."""
        pending = [s for s in produced if s.owes_second_pass]
        if not pending or self.finals is None:
            return None
        early = self.early.get(stream_id)
        if early is not None and len(pending) == 1 \
                and early[0] == (pending[0].index, pending[0].speech_end, pending[0].phrases):
            del self.early[stream_id]
            self._early["used"].inc()
            return early[1]
        self._drop_early(stream_id)  # it read something else than this final owes
        return self.finals.search([owed(s) for s in pending])

    def _start_early(self, stream_id: str, stream: Stream) -> None:
        """Start the open segment's second pass once its speech has ended (``early_second_pass_after_s`` of
        silence, before the endpoint), as Google's two-pass endpointing prefetches it: at the endpoint the final
        is done or nearly. If speech comes first, the pass is dropped (its work wasted). Not while the search
        processes are backlogged: there a wasted pass would delay the finals that are due."""
        if self.finals is None or not self.settings.early_second_pass:
            return
        ended = self.recognizer.speech_ended(stream, self.settings.early_second_pass_after_s)
        key = None if ended is None else (*ended, stream.phrases)
        held = self.early.get(stream_id)
        if held is not None and held[0] != key:  # speech came, or a new phrase list
            self._drop_early(stream_id)
            held = None
        if key is not None and held is None and not self.finals.busy:  # backlogged: wait for the endpoint
            self.early[stream_id] = (key, self.finals.search([self.recognizer.early_second_pass(stream, key[1])]))
            while len(self.early) > self.settings.max_streams:  # streams revoked mid-pause leave theirs behind
                self._drop_early(next(iter(self.early)))

    def _drop_early(self, stream_id: str) -> None:
        held = self.early.pop(stream_id, None)
        if held is not None:
            held[1].cancel()
            self._early["discarded"].inc()

    def _finish(self, item: Pending[Chunk], context: ChunkContext, produced: list[Segment], end: bool,
                inference_s: float, search: Future[SearchDone]) -> list[Result]:
        """A chunk's results once its finals' beam search is done."""
        done = self._apply_search(context, produced, search)
        return self._results(item, context, produced, end, inference_s,
                             {"search_ms": round(done.seconds * 1000, 3), "search_beam": done.beam,
                              "search_shared": done.shared})

    def _apply_search(self, context: ChunkContext, produced: list[Segment], search: Future[SearchDone]) -> SearchDone:
        """Give the finals among ``produced`` what their beam search found; their greedy text if it failed."""
        pending = [s for s in produced if s.owes_second_pass]
        try:
            done = search.result()
        except Exception as exc:
            log.warning("%s: beam search for stream %r failed (%s); sending the greedy final", self.name,
                        context.stream_id, exc)
            done = SearchDone([], 0.0, 0)
        for segment, searched in zip(pending, done.found, strict=False):
            self.recognizer.apply_second_pass(segment, searched)
        metrics.FINAL_SEARCHES.labels(worker=self.name, beam=str(done.beam)).inc()
        if done.found:
            metrics.FINALS_BY_SHARED_CALL.labels(worker=self.name, shared=str(done.shared)).inc(len(done.found))
        return done

    def on_expired(self, expired: list[tuple[str, StreamState]]) -> list[Owed]:
        """Streams silent for ``state_ttl_s`` without ``end``: each open segment is closed as a final (reason
        ``idle_timeout``; all in one model call, the beam searches in the search processes like any final),
        so a client that vanished mid-sentence still gets its words. A chunk arriving later resumes the
        stream on fresh state, and its results follow that final."""
        speaking = [(stream_id, state) for stream_id, state in expired if state.stream.decoder.heard]
        if not speaking:
            return []
        silence = np.zeros(0, np.float32)
        produced = self.recognizer.accept([s.stream for _, s in speaking], [silence] * len(speaking),
                                          [True] * len(speaking), defer_search=self.finals is not None)
        owed = []
        for (stream_id, state), segments in zip(speaking, produced, strict=True):
            context = ChunkContext(stream_id, state.next_seq - 1, state.stream.audio_s, state.resumed)
            search = self._search(segments, stream_id)
            if search is not None:
                outcome: list[Result] | Deferred = Deferred(search, partial(self._finish_idle, context, segments))
            else:
                outcome = self._idle_results(context, segments)
            owed.append(Owed(stream_id, outcome))
        return owed

    def _finish_idle(self, context: ChunkContext, produced: list[Segment], search: Future[SearchDone]) -> list[Result]:
        self._apply_search(context, produced, search)
        return self._idle_results(context, produced)

    def _idle_results(self, context: ChunkContext, produced: list[Segment]) -> list[Result]:
        """The finals with words of a stream closed for being idle (no latency: no chunk asked for them)."""
        results = []
        for segment in produced:
            if segment.final and segment.text:
                segment.reason = "idle_timeout"
                results.append(self._emit(context, segment, False, None))
        return results

    def close(self) -> None:
        if self.finals is not None:
            self.finals.close()

    def _emit(self, context: ChunkContext, segment: Segment, end: bool, latency: dict | None) -> Result:
        """One transcript record; a final is counted by why it ended."""
        if segment.final:
            metrics.SEGMENTS.labels(worker=self.name, reason=segment.reason).inc()
        return Result(encode_json(self._result(context, segment, end, latency)), context.stream_id.encode())

    def _result(self, context: ChunkContext, segment: Segment, end: bool, latency: dict | None) -> dict:
        """``end``: this is the stream's last result; ``latency``: None for a result no chunk asked for."""
        result = {
            "stream_id": context.stream_id, "seq": context.seq, "type": "final" if segment.final else "partial",
            "segment": segment.index, "text": segment.text, "words": [w.as_dict() for w in segment.words],
            "start_s": round(segment.start_s, 3), "end_s": round(segment.end_s, 3),
            "audio_s": round(context.audio_s, 3), "end_of_stream": end,
            "model_version": self.version,
        }
        if latency is not None:
            result["latency"] = latency
        if segment.final:
            result["reason"] = segment.reason
            display = self.recognizer.display(segment)
            if display is not None:
                result["display"] = display
        if context.gap:
            result["gap_chunks"] = context.gap
        if context.resumed:
            result["resumed"] = True
        return result
