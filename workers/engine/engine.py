"""The streaming engine: consume -> decode -> micro-batch -> model -> produce -> commit.

Commit order (Quix's checkpoint rule): an offset is committed only after every record produced for
it -- results, or its dead-letter record, and its key's state record where the state has a changelog
(:mod:`workers.engine.changelog`) -- was acknowledged by the broker, and only as part of the
contiguous done prefix of its partition. A crash therefore re-reads, never skips; duplicates are
limited to the uncommitted window, and each result carries ``source.*`` headers to de-duplicate.

The loop is single-threaded: batches run in arrival order and results are produced in that order,
so per-key (per-partition) ordering holds. A handler may defer part of its work (:class:`Deferred`);
later outcomes of that key then wait behind it, so each key's order still holds; results owed by
housekeeping (:class:`Owed`, without an input) take their place in their key's order too. Backpressure pauses
every assigned partition while more than ``max_in_flight`` messages are unfinished, and resumes them at
half that.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import wait
from dataclasses import dataclass
from typing import Any

from workers import metrics as m
from workers.engine.batcher import AdaptiveBatchLimits, MicroBatcher
from workers.engine.changelog import Changelog, StateWrite
from workers.engine.dlq import dead_letter
from workers.engine.handler import Deferred, Handler, InvalidMessage, Outcome, Pending, Result, StatefulHandler
from workers.engine.offsets import OffsetTracker
from workers.engine.reload import ModelReloader
from workers.garbage_collection import collect_replaced
from workers.http import Health
from workers.settings import EngineSettings
from workers.topics import Topics
from workers.transport.base import Consumer, Producer
from workers.transport.records import OutgoingRecord, Record, TopicPartition

log = logging.getLogger(__name__)
DEFERRED_POLL_S = 0.002
"""Longest poll while deferred results are outstanding: how late a finished one may be sent."""


class FatalDeliveryError(RuntimeError):
    """The broker refused a result after the client's retries: stop without committing past it."""


@dataclass(slots=True)
class _Completion:
    """One input message whose records (results, or its dead-letter record) are produced, not yet acknowledged."""

    tp: TopicPartition
    offset: int
    timestamp_ms: int | None
    to_dlq: bool
    state: StateWrite | None = None
    """The key's state record this input also waits for (its results go out first)."""
    acked_at: float = 0.0


class StreamEngine:
    def __init__(
        self,
        handler: Handler[Any],
        settings: EngineSettings,
        consumer: Consumer,
        producer: Producer,
        health: Health | None = None,
        reloader: ModelReloader | None = None,
        changelog: Changelog | None = None,
    ) -> None:
        self.handler = handler
        self.settings = settings
        self.consumer = consumer
        self.producer = producer
        self.health = health or Health()
        self.reloader = reloader
        self.changelog = changelog
        if changelog is not None:
            if not isinstance(handler, StatefulHandler):
                raise ValueError(f"{handler.name} keeps no per-key state: it has no changelog")
            changelog.connect(producer.produce, self._state_written)
            changelog.bind(handler)
        self._state_writes: dict[tuple[TopicPartition, int], StateWrite] = {}
        """State records owed for inputs whose outcome is not sent yet, by input."""
        topics = Topics.of_handler(handler, settings)
        self.input_topic, self.output_topic, self.dlq_topic = topics.input, topics.output, topics.dlq
        self.tracker = OffsetTracker()
        self.batcher: MicroBatcher[Pending[Any]] = MicroBatcher(
            settings.max_batch_size, settings.max_batch_wait_ms / 1000, handler.one_per_key
        )
        self.adaptive = (AdaptiveBatchLimits(settings.batch_latency_target_ms / 1000, settings.max_batch_size)
                         if settings.batch_latency_target_ms > 0 else None)
        self._stop = threading.Event()
        self._paused = False
        self._fatal: Exception | None = None
        self._last_commit = time.monotonic()
        self._last_housekeeping = 0.0
        self._lag_partitions: set[int] = set()
        self._owned: set[int] = set()
        """The input partitions assigned to this worker now (what the rebalance callbacks said last)."""
        self._completed = 0
        self._completed_e2e: list[float] = []
        """Inputs completed (results acknowledged) and their end-to-end seconds, not yet in the metrics."""
        self._outbox: list[OutgoingRecord] = []
        self._outbox_inputs: list[_Completion] = []
        """Records to produce as one group (a batch's results, dead-letter records), and the inputs they
        complete: produced together at the end of a batch or loop turn, acknowledged together."""
        self._held: dict[str, deque[tuple[Record | None, Outcome]]] = {}
        """Per key, outcomes waiting for a :class:`Deferred` ahead of them (the head is always one); an
        outcome without a record is owed by housekeeping."""
        labels = {"worker": handler.name, "topic": self.input_topic}
        self._m_in = m.MESSAGES_IN.labels(**labels)
        self._m_in_flight = m.IN_FLIGHT.labels(**labels)
        self._m_paused = m.PAUSED.labels(**labels)
        self._m_assigned = m.ASSIGNED_PARTITIONS.labels(**labels)
        self._m_limit_size = m.BATCH_LIMIT.labels(**labels, limit="size")
        self._m_limit_wait = m.BATCH_LIMIT.labels(**labels, limit="wait_seconds")
        self._report_batch_limits()
        self._bind_model_metrics()

    def _bind_model_metrics(self) -> None:
        """Series labelled with the model and its version: every figure says which version made it."""
        model = self.handler.model
        labels = {"worker": self.handler.name, "topic": self.input_topic, "model": model.name, "version": model.version}
        self._m_out = m.MESSAGES_OUT.labels(**labels)
        self._m_e2e = m.END_TO_END.labels(**labels)
        self._m_wait = m.QUEUE_WAIT.labels(**labels)
        self._m_batch = m.BATCH_SIZE.labels(**labels)
        inference = m.INFERENCE.labels(**labels)
        model.observer = lambda seconds, _batch: inference.observe(seconds)
        m.MODEL_INFO.labels(worker=self.handler.name, model=model.name, version=model.version, provider=model.provider).set(1)

    def _switch_model(self, new: Handler[Any]) -> None:
        """Hand over to a loaded and warmed new model version, between batches."""
        old = self.handler
        self._release_held(wait_for_all=True)  # deferred results of the old version finish on it
        self._flush_completed_metrics()  # counted under the version that made them
        new.adopt(old)
        self.handler = new
        if self.changelog is not None:
            self.changelog.bind(new)  # type: ignore[arg-type]
        m.MODEL_INFO.labels(worker=old.name, model=old.model.name, version=old.model.version, provider=old.model.provider).set(0)
        self._bind_model_metrics()
        log.info("%s: now serving model %s version %s (was %s)", new.name, new.model.name, new.model.version, old.model.version)
        old.close()
        collect_replaced()  # the old version was frozen with start-up: free it

    # -- lifecycle -------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop fetching; the loop then finishes in-flight work, flushes, commits and returns."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        def handle(signum: int, _frame: object) -> None:
            log.info("received %s: draining and stopping", signal.Signals(signum).name)
            self.request_stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Serve until :meth:`request_stop` (or ``until()`` is true); raises on a fatal delivery error."""
        self.consumer.subscribe([self.input_topic], listener=self)
        self.health.ready = True
        log.info(
            "%s: consuming %s -> %s (dlq %s), batch <= %d, %s",
            self.handler.name, self.input_topic, self.output_topic, self.dlq_topic, self.settings.max_batch_size,
            f"size and wait adaptive for a {self.settings.batch_latency_target_ms:.1f} ms target" if self.adaptive
            else f"wait <= {self.settings.max_batch_wait_ms:.1f} ms",
        )
        try:
            while not self._stop.is_set() and not (until and until()):
                self.step()
        finally:
            self.health.ready = False
            self._shutdown()

    def step(self) -> None:
        """One turn of the loop: poll, decode, run due batches, serve acks, commit, backpressure."""
        self.health.beat()
        due_in = self.batcher.seconds_until_due()
        timeout = 0.1 if due_in is None else min(due_in, 0.1)
        if self._held:
            timeout = min(timeout, DEFERRED_POLL_S)  # a deferred result may be ready any moment
        room = max(1, self.settings.max_in_flight - self.tracker.in_flight)
        polled_at = time.monotonic()
        records = self.consumer.poll(timeout, min(self.settings.poll_max_records, room))
        if records:
            self._m_in.inc(len(records))
            received_at, enqueued_at = time.time(), time.monotonic()  # once a poll, not once a message
            for record in records:
                self._accept(record, received_at, enqueued_at)
        if not records and not len(self.batcher):
            # With the broker unreachable, clients return from poll at once: do not spin a core.
            time.sleep(max(0.0, timeout - (time.monotonic() - polled_at)))
        while self.batcher.due():
            self._run_batch(self.batcher.take())
        self._release_held(wait_for_all=False)
        if self.changelog is not None:
            self.changelog.tick()  # tombstones of keys dropped, writes whose interval is up
        if self.reloader is not None and (new := self.reloader.take()) is not None:
            self._switch_model(new)
        self.producer.poll()
        self._flush_completed_metrics()
        self._raise_if_fatal()
        now = time.monotonic()
        if now - self._last_commit >= self.settings.commit_interval_s:
            self._commit()
        self._apply_backpressure()
        if now - self._last_housekeeping >= 1.0:
            self._housekeeping(now)

    # -- the pipeline ----------------------------------------------------------------------------

    def _accept(self, record: Record, received_at: float, enqueued_at: float) -> None:
        if record.partition not in self._owned:
            # Fetched before its partition was revoked, and handed over by the client anyway: applying it would
            # make its key's state afresh and write that to the changelog, where the new owner restores it.
            log.info("%s: dropped %s[%d]@%d: its partition is not assigned to this worker (revoked after the "
                     "fetch); its owner reads it from the committed offset", self.handler.name, record.topic,
                     record.partition, record.offset)
            return
        self.tracker.track(record.tp, record.offset)
        if record.value is None:
            self._send_to_dlq(record, InvalidMessage("empty_value", "record has no value (tombstone)"))
            return
        try:
            key, value = self.handler.decode(record)
        except InvalidMessage as invalid:
            self._send_to_dlq(record, invalid)
            return
        self.batcher.add(Pending(record, key, value, received_at, enqueued_at))

    def _run_batch(self, batch: list[Pending[Any]]) -> None:
        if self.changelog is not None:
            batch = self._not_yet_applied(batch)
        if not batch:
            return
        started = time.monotonic()
        m.observe_many(self._m_wait, [started - item.enqueued_at for item in batch])
        self._m_batch.observe(len(batch))
        try:
            outcomes = self.handler.process(batch)
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{self.handler.name}.process returned {len(outcomes)} outcomes for {len(batch)}")
        except Exception:
            log.exception("%s: batch of %d failed; retrying its items one by one", self.handler.name, len(batch))
            outcomes = [self._process_alone(item) for item in batch]
        if self.adaptive is not None and self.adaptive.observe(len(batch), time.monotonic() - started):
            self.batcher.max_size, self.batcher.max_wait_s = self.adaptive.max_size, self.adaptive.max_wait_s
            self._report_batch_limits()
        if self.changelog is not None:
            self._state_writes.update(self.changelog.writes_for(batch))
        for item, outcome in zip(batch, outcomes, strict=True):
            self._hand_over(item.key, item.record, outcome)
        self._produce_outbox()

    def _report_batch_limits(self) -> None:
        self._m_limit_size.set(self.batcher.max_size)
        self._m_limit_wait.set(self.batcher.max_wait_s)

    def _not_yet_applied(self, batch: list[Pending[Any]]) -> list[Pending[Any]]:
        """Drop re-read inputs the restored state already reflects: their results were delivered."""
        assert self.changelog is not None
        fresh = []
        for item in batch:
            if self.changelog.already_applied(item):
                self.tracker.done(item.record.tp, item.record.offset)
            else:
                fresh.append(item)
        return fresh

    def _hand_over(self, key: str, record: Record | None, outcome: Outcome) -> None:
        """Send an outcome now, or hold it: behind its key's deferred outcome, or as its key's first one."""
        held = self._held.get(key)
        if held is not None:
            held.append((record, outcome))
        elif isinstance(outcome, Deferred):
            self._held[key] = deque([(record, outcome)])
        else:
            self._send_outcome(record, outcome)

    def _release_held(self, wait_for_all: bool) -> None:
        """Send each key's held outcomes up to its first deferred one that is not done (or all of them)."""
        for key in list(self._held):
            held = self._held[key]
            while held:
                record, outcome = held[0]
                if isinstance(outcome, Deferred) and not outcome.future.done():
                    if not wait_for_all:
                        break
                    wait([outcome.future])
                held.popleft()
                self._send_outcome(record, outcome)
            if not held:
                del self._held[key]
        self._produce_outbox()

    def _send_outcome(self, record: Record | None, outcome: Outcome) -> None:
        """Queue an input's results or its dead-letter record in the outbox; ``record`` None: results owed by
        housekeeping, which hold no offset (and have no input to dead-letter if they fail)."""
        if isinstance(outcome, Deferred):
            try:
                outcome = outcome.finish(outcome.future)
            except InvalidMessage as invalid:
                outcome = invalid
            except Exception as exc:
                log.exception("%s: finishing a deferred result failed", self.handler.name)
                outcome = InvalidMessage("inference_error", f"{type(exc).__name__}: {exc}")
        if record is None:
            if isinstance(outcome, InvalidMessage):
                log.warning("%s: results owed by housekeeping are lost: %s", self.handler.name, outcome)
            else:  # in the outbox too, so they keep their place behind their key's earlier results
                self._outbox.extend(OutgoingRecord(self.output_topic, r.value, r.key, list(r.headers)) for r in outcome)
        elif isinstance(outcome, InvalidMessage):
            self._send_to_dlq(record, outcome)
        else:
            self._send_results(record, outcome)

    def _process_alone(self, item: Pending[Any]) -> Outcome:
        try:
            return self.handler.process([item])[0]
        except Exception as exc:  # the model itself rejects this input
            return InvalidMessage("inference_error", f"{type(exc).__name__}: {exc}")

    def _send_results(self, record: Record, results: list[Result]) -> None:
        tp = record.tp
        completion = _Completion(tp, record.offset, record.timestamp_ms, to_dlq=False,
                                 state=self._state_writes.pop((tp, record.offset), None))
        if not results:
            self._results_acknowledged(completion, time.time())
            return
        source = [
            ("source.topic", record.topic.encode()),
            ("source.partition", str(record.partition).encode()),
            ("source.offset", str(record.offset).encode()),
        ]
        output = self.output_topic
        self._outbox.extend(OutgoingRecord(output, r.value, r.key, [*r.headers, *source]) for r in results)
        self._outbox_inputs.append(completion)

    def _send_to_dlq(self, record: Record, invalid: InvalidMessage) -> None:
        log.warning(
            "%s: %s[%d]@%d -> %s: %s", self.handler.name, record.topic, record.partition, record.offset,
            self.dlq_topic, invalid,
        )
        m.MESSAGES_DLQ.labels(worker=self.handler.name, topic=self.input_topic, reason=invalid.code).inc()
        self._outbox.append(dead_letter(record, self.dlq_topic, self.handler.name, invalid.code, invalid.detail))
        tp = record.tp
        self._outbox_inputs.append(_Completion(tp, record.offset, record.timestamp_ms, to_dlq=True,
                                               state=self._state_writes.pop((tp, record.offset), None)))

    def _produce_outbox(self) -> None:
        """Produce what the batch or loop turn owes, in order, as one group with one acknowledgement."""
        if not self._outbox:
            return
        records, inputs = self._outbox, self._outbox_inputs
        self._outbox, self._outbox_inputs = [], []
        self.producer.produce_all(records, lambda error, acked_at: self._acknowledged(inputs, error, acked_at))

    def _acknowledged(self, inputs: list[_Completion], error: Exception | None, acked_at: float) -> None:
        if error is not None:
            first = inputs[0] if inputs else None
            log.error("produce for %d inputs (the first %s) failed: %s", len(inputs),
                      f"{first.tp}@{first.offset}" if first else "none: housekeeping results", error)
            self._fatal = self._fatal or FatalDeliveryError(str(error))
            return
        for completion in inputs:
            self._results_acknowledged(completion, acked_at)

    def _results_acknowledged(self, completion: _Completion, acked_at: float) -> None:
        """An input's results are acknowledged: it is done, or its key's state record goes out now."""
        completion.acked_at = acked_at
        if completion.state is None or self.changelog is None:
            self._complete(completion, acked_at)
        else:
            self.changelog.results_acknowledged(completion.state, completion)

    def _state_written(self, write: StateWrite, error: Exception | None, _acked_at: float) -> None:
        if error is not None:
            log.error("state changelog write for key %r failed: %s", write.key, error)
            self._fatal = self._fatal or FatalDeliveryError(str(error))
            return
        for completion in write.completions:
            self._complete(completion, completion.acked_at)

    def _complete(self, completion: _Completion, acked_at: float) -> None:
        self.tracker.done(completion.tp, completion.offset)
        if completion.to_dlq:
            return
        self._completed += 1
        if completion.timestamp_ms and completion.timestamp_ms > 0:
            self._completed_e2e.append(max(0.0, acked_at - completion.timestamp_ms / 1000))

    def _flush_completed_metrics(self) -> None:
        """Count and time the inputs completed since the last call: once a loop turn, not once a message."""
        if self._completed:
            self._m_out.inc(self._completed)
            self._completed = 0
        if self._completed_e2e:
            m.observe_many(self._m_e2e, self._completed_e2e)
            self._completed_e2e = []

    def _raise_if_fatal(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    # -- offsets, backpressure, rebalance --------------------------------------------------------

    def _commit(self) -> None:
        self._last_commit = time.monotonic()
        offsets = self.tracker.take_committable()
        if not offsets:
            return
        try:
            self.consumer.commit(offsets)
            m.COMMITS.labels(worker=self.handler.name, topic=self.input_topic, outcome="ok").inc()
        except Exception as exc:  # e.g. a rebalance is under way; the next commit carries them
            m.COMMITS.labels(worker=self.handler.name, topic=self.input_topic, outcome="failed").inc()
            log.warning("commit of %s failed (%s); will retry", offsets, exc)
            self.tracker.restore(offsets)

    def _apply_backpressure(self) -> None:
        in_flight = self.tracker.in_flight
        self._m_in_flight.set(in_flight)
        if not self._paused and in_flight >= self.settings.max_in_flight:
            self.consumer.pause(self.consumer.assignment())
            self._paused = True
            self._m_paused.set(1)
            log.info("backpressure: %d messages in flight, pausing consumption", in_flight)
        elif self._paused and in_flight <= self.settings.max_in_flight // 2:
            self.consumer.resume(self.consumer.assignment())
            self._paused = False
            self._m_paused.set(0)
            log.info("backpressure released: %d in flight, resuming", in_flight)

    def _housekeeping(self, now: float) -> None:
        self._last_housekeeping = now
        for owed in self.handler.housekeeping():
            self._hand_over(owed.key, None, owed.outcome)
        self._produce_outbox()
        if self.reloader is not None:
            self.reloader.check()
        lags = self.consumer.lag()
        for tp, lag in lags.items():
            m.CONSUMER_LAG.labels(worker=self.handler.name, topic=tp.topic, partition=str(tp.partition)).set(lag)
        for gone in self._lag_partitions - {tp.partition for tp in lags}:
            m.CONSUMER_LAG.remove(self.handler.name, self.input_topic, str(gone))
        self._lag_partitions = {tp.partition for tp in lags}

    def drain(self, timeout_s: float) -> bool:
        """Run every queued message, wait for deferred results and all acknowledgements, commit. False if
        acks timed out."""
        while len(self.batcher):
            self._run_batch(self.batcher.take())
        self._release_held(wait_for_all=True)
        deadline = time.monotonic() + timeout_s
        while True:  # acknowledged results let their state records go out: flush those too
            if self.changelog is not None:
                self.changelog.tick(force=True)
            flushed = self.producer.flush(max(0.0, deadline - time.monotonic()))
            if not (flushed and self.changelog is not None and self.changelog.pending and time.monotonic() < deadline):
                break
        self._flush_completed_metrics()
        self._raise_if_fatal()
        self._commit()
        return flushed

    def on_partitions_revoked(self, partitions: set[TopicPartition]) -> None:
        """Finish and commit everything before another member takes these partitions over."""
        log.info("%s: partitions revoked: %s", self.handler.name, sorted(p.partition for p in partitions))
        self.drain(self.settings.shutdown_timeout_s)
        self.tracker.forget(partitions)
        numbers = {tp.partition for tp in partitions if tp.topic == self.input_topic}
        if self.changelog is not None:
            self.changelog.forget(numbers)
            self._state_writes = {k: w for k, w in self._state_writes.items() if k[0] not in partitions}
        self.handler.on_partitions_revoked(numbers)
        self._owned -= numbers
        self._m_assigned.set(len(self.consumer.assignment() - partitions))

    def on_partitions_assigned(self, partitions: set[TopicPartition]) -> None:
        log.info("%s: partitions assigned: %s", self.handler.name, sorted(p.partition for p in partitions))
        numbers = {tp.partition for tp in partitions if tp.topic == self.input_topic}
        self._owned |= numbers
        if self.changelog is not None:  # not ready (503) until the partitions' state is back
            self.health.ready = False
            self.changelog.restore(numbers, self.settings.state_ttl_s)
            self.health.ready = True
        self._m_assigned.set(len(self.consumer.assignment() | partitions))
        if self._paused and partitions:
            self.consumer.pause(partitions)

    def _shutdown(self) -> None:
        try:
            if self._fatal is None:
                if not self.drain(self.settings.shutdown_timeout_s):
                    log.error("shutdown: not every result was acknowledged in %.0fs", self.settings.shutdown_timeout_s)
                log.info("%s: drained and committed; leaving the group", self.handler.name)
        finally:
            self.consumer.close()
            self.producer.close()
            self.handler.close()
