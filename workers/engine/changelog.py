"""Per-key state backed by a changelog topic, restored before a partition is processed (Kafka Streams',
Faust's and Quix's idea), so a crash or a rebalance neither forgets state nor applies an input twice.

The rules, and why:

- **One record per key per batch**, keyed by the state key, in the changelog partition with the input's
  partition number (a key's state lives where the key's input does), carrying the input offset it reflects
  (``state.offset``) and the model version (``state.version``).
- **Results first, then the state**: a key's state record is produced only once the results of the inputs
  it reflects are acknowledged, and after the key's previous state record. So a state the broker holds
  never reflects an input whose results could still be lost. An input's offset is committed only once its
  results and its state record are acknowledged (the engine's commit rule, extended).
- **Restore, then skip**: on assignment, each partition's latest record per key is read back. A re-read
  input at or below the offset its key's state reflects was already applied and delivered: it is skipped,
  not applied again. Every other input meets the same state it met the first time, so the results after a
  crash equal those of a run without one.
- **Bounded restore**: expired and evicted keys are tombstoned; records older than the state TTL are
  ignored, and where the broker can look offsets up by time the reader starts at ``now - ttl``. The topic is
  created ``compact,delete`` with a retention of twice the TTL (at least an hour): a live key is written at
  least once per TTL, so nothing it needs is deleted. A broker that neither compacts nor looks offsets up by
  time (the embedded one) makes restore read the whole retained log.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from workers import metrics as m
from workers.transport.base import DeliveryCallback, PartitionReader
from workers.transport.records import MAX_RECORD_BYTES, OutgoingRecord, Record

if TYPE_CHECKING:
    from workers.engine.handler import Pending, StatefulHandler
    from workers.engine.state import KeyedState

log = logging.getLogger(__name__)
S = TypeVar("S")
OFFSET_HEADER = "state.offset"
VERSION_HEADER = "state.version"


class StateCodec(Protocol[S]):
    """How a workload writes its per-key state as bytes and reads it back (exactly: restored state must
    give the same results as the state it was written from)."""

    def encode(self, state: S) -> bytes: ...

    def decode(self, data: bytes) -> S: ...


def changelog_topic(group_id: str, worker: str) -> str:
    """The changelog of ``worker`` in consumer group ``group_id`` (one per group: another group keeps its own)."""
    return f"{group_id}-{worker}-state"


def changelog_config(ttl_s: float) -> dict[str, str]:
    """Topic config: compacted (latest record per key) and, as a bound where compaction lags, deleted after
    twice the state TTL (at least an hour); records up to :data:`MAX_RECORD_BYTES` (an audio stream's)."""
    return {"cleanup.policy": "compact,delete", "retention.ms": str(int(max(2 * ttl_s, 3600) * 1000)),
            "max.message.bytes": str(MAX_RECORD_BYTES)}


@dataclass(eq=False, slots=True)
class StateWrite:
    """A key's state record, owed once the results of the inputs it reflects are acknowledged and the key's
    previous record was produced. Until it is produced, later batches of the key fold into it (one record
    for all of them), and it is encoded only then, from the key's state as it is at that moment: it reflects
    exactly the inputs folded into it, whose results are all acknowledged."""

    key: str
    partition: int
    offset: int
    """The newest input offset it reflects."""
    waiting: int
    """Inputs it reflects whose results are not acknowledged yet."""
    deleted: bool = False
    """A tombstone: the key was dropped for good (still carrying ``offset``)."""
    completions: list[Any] = field(default_factory=list)
    """The engine's completions of those inputs, finished when this record is acknowledged."""
    after: StateWrite | None = None
    """The key's previous record while it is not produced yet (records of a key go out in order)."""
    produced: bool = False
    next: StateWrite | None = None
    not_before: float = 0.0
    """Monotonic time before which it may not go out (the handler's ``state_write_interval_s``)."""


Written = Callable[[StateWrite, Exception | None, float], None]


class Changelog:
    """The engine's side of a stateful handler's changelog: writes in order, tombstones and restore."""

    def __init__(self, topic: str, worker: str, reader: Callable[[], PartitionReader]) -> None:
        self.topic = topic
        self._reader = reader
        self._produce: Callable[[OutgoingRecord, DeliveryCallback], None]
        self._written: Written
        self._last: dict[str, StateWrite] = {}
        """Per key, its newest write not yet acknowledged."""
        self._unacknowledged: set[StateWrite] = set()
        self._removed: dict[str, tuple[int, int]] = {}
        """Keys dropped from the state since the last batch or tick (partition, offset): tombstones owed."""
        self._timed: set[StateWrite] = set()
        """Writes ready but for ``not_before``."""
        self._last_out: dict[str, float] = {}
        self.interval_s = 0.0
        self._m_records = m.STATE_CHANGELOG_RECORDS.labels(worker=worker)
        self._m_bytes = m.STATE_CHANGELOG_BYTES.labels(worker=worker)
        self._records_out = self._bytes_out = 0
        """Records and bytes sent since the last :meth:`tick`: counted there, once a loop turn (two counter
        increments a record, each taking the counter's lock, were a microsecond an event on a cheap model)."""
        # read when scraped (set on every write and acknowledgement it was 2.5% of a cheap model's loop, py-spy);
        # through a weak reference, so the registry does not keep a replaced changelog and its store alive
        alive = weakref.ref(self)
        m.STATE_CHANGELOG_PENDING.labels(worker=worker).set_function(
            lambda: changelog.pending if (changelog := alive()) is not None else 0)
        self._m_skipped = m.STATE_ALREADY_APPLIED.labels(worker=worker)
        self._m_restore = m.STATE_RESTORE.labels(worker=worker)
        self._m_restored = m.STATE_RESTORED_KEYS.labels(worker=worker)
        self.store: KeyedState[Any]
        self.codec: StateCodec[Any]
        self.version: str | None = None

    def connect(self, produce: Callable[[OutgoingRecord, DeliveryCallback], None], written: Written) -> None:
        """The engine's producer, and what to call when a state record is acknowledged (or refused)."""
        self._produce = produce
        self._written = written

    def bind(self, handler: StatefulHandler[Any]) -> None:
        """Serve ``handler``'s state (again after a model switch: a new version may hold new state)."""
        if handler.state_codec is None:
            raise ValueError(f"{handler.name} has no state codec: its state cannot go to a changelog")
        self.store = handler.state
        self.codec = handler.state_codec
        self.version = handler.model.version if handler.state_belongs_to_model else None
        self.interval_s = handler.state_write_interval_s
        self.store.on_removed = self._on_removed

    def _on_removed(self, key: str, partition: int, offset: int) -> None:
        self._removed[key] = (partition, offset)

    # -- writing ---------------------------------------------------------------------------------

    def already_applied(self, item: Pending[Any]) -> bool:
        """A re-read input its key's restored state already reflects (and whose results were delivered)."""
        if self.store.reflects(item.key, item.record.offset):
            self._m_skipped.inc()
            return True
        return False

    def writes_for(self, batch: list[Pending[Any]]) -> dict[tuple[Any, int], StateWrite]:
        """After ``batch`` was processed: one write per key (its state, or a tombstone when the batch ended
        the key), by each input it reflects."""
        by_key: dict[str, list[Pending[Any]]] = {}
        for item in batch:
            by_key.setdefault(item.key, []).append(item)
        writes: dict[tuple[Any, int], StateWrite] = {}
        for key, items in by_key.items():
            offset = items[0].record.offset if len(items) == 1 else max(item.record.offset for item in items)
            held = self.store.applied(key, offset)
            if held is not None:
                write = self._chain(key, held[1], offset, len(items), deleted=False)
            elif key in self._removed:  # the batch ended it (a stream's end): deleted after its results
                partition, _ = self._removed.pop(key)
                write = self._chain(key, partition, offset, len(items), deleted=True)
            else:
                continue  # nothing held for it (e.g. rejected before any state was made)
            for item in items:
                writes[(item.record.tp, item.record.offset)] = write
        return writes

    def tick(self, force: bool = False) -> None:
        """Tombstones for keys dropped other than by the batch that ended them (expiry, eviction); writes
        whose interval is up (all of them when ``force``: draining before a rebalance or shutdown). The engine
        calls it once a loop turn and while draining. Counts the records sent since the last tick."""
        removed, self._removed = self._removed, {}
        for key, (partition, offset) in removed.items():
            self._release(self._chain(key, partition, offset, 0, deleted=True))
        if self._timed:
            now = time.monotonic()
            for write in [w for w in self._timed if force or w.not_before <= now]:
                self._timed.discard(write)
                if force:
                    write.not_before = 0.0
                self._release(write)
        if self._records_out:
            self._m_records.inc(self._records_out)
            self._m_bytes.inc(self._bytes_out)
            self._records_out = self._bytes_out = 0

    @property
    def pending(self) -> int:
        """State records owed or in flight: the inputs they reflect are not committable yet."""
        return len(self._unacknowledged)

    def results_acknowledged(self, write: StateWrite, completion: Any) -> None:
        """One input's results are acknowledged: its key's record may go out now."""
        write.completions.append(completion)
        write.waiting -= 1
        self._release(write)

    def _chain(self, key: str, partition: int, offset: int, waiting: int, deleted: bool) -> StateWrite:
        previous = self._last.get(key)
        if previous is not None and not previous.produced:  # fold into it: one record for both
            previous.offset = max(previous.offset, offset)
            previous.waiting += waiting
            previous.deleted = deleted
            return previous
        write = StateWrite(key, partition, offset, waiting, deleted, after=previous)
        if previous is not None:
            previous.next = write
        if self.interval_s and key in self._last_out:
            write.not_before = self._last_out[key] + self.interval_s
        self._last[key] = write
        self._unacknowledged.add(write)
        return write

    def _release(self, write: StateWrite | None) -> None:
        while write is not None and write.waiting == 0 and not write.produced and (write.after is None or write.after.produced):
            if write.not_before > time.monotonic():
                self._timed.add(write)
                return
            self._send(write)
            write = write.next

    def _send(self, write: StateWrite) -> None:
        write.produced = True
        value = None
        if not write.deleted:
            state = self.store.peek(write.key)
            if state is None:  # gone meanwhile (a model switch to fresh state): nothing left to keep
                write.deleted = True
            else:
                value = self.codec.encode(state)
        headers = [(OFFSET_HEADER, str(write.offset).encode())]
        if self.version is not None:
            headers.append((VERSION_HEADER, self.version.encode()))
        if self.interval_s:
            self._last_out[write.key] = time.monotonic()
        self._records_out += 1
        if value is not None:
            self._bytes_out += len(value)
        record = OutgoingRecord(self.topic, value, write.key.encode(), headers, write.partition)
        self._produce(record, lambda error, acked_at, w=write: self._acknowledged(w, error, acked_at))

    def _acknowledged(self, write: StateWrite, error: Exception | None, acked_at: float) -> None:
        if error is None:
            self._unacknowledged.discard(write)
            if self._last.get(write.key) is write:
                del self._last[write.key]
                if write.deleted:
                    self._last_out.pop(write.key, None)
        self._written(write, error, acked_at)

    def forget(self, partitions: set[int]) -> None:
        """Partitions moved away (after the engine drained them): nothing of theirs is owed any more."""
        for key in [k for k, w in self._last.items() if w.partition in partitions]:
            del self._last[key]
        self._unacknowledged = {w for w in self._unacknowledged if w.partition not in partitions}
        self._timed = {w for w in self._timed if w.partition not in partitions}
        self._removed = {k: r for k, r in self._removed.items() if r[0] not in partitions}
        self._last_out = {}

    # -- restoring -------------------------------------------------------------------------------

    def restore(self, partitions: set[int], ttl_s: float) -> int:
        """Read back the latest state of every key of ``partitions`` (written within ``ttl_s``); returns the
        number of keys restored."""
        if not partitions:
            return 0
        started = time.monotonic()
        now_ms = time.time() * 1000
        since_ms = int(now_ms - ttl_s * 1000)
        latest: dict[bytes, Record] = {}
        reader = self._reader()
        try:
            for record in reader.read_to_end(self.topic, sorted(partitions), since_ms):
                if record.key is not None:
                    latest[record.key] = record
        finally:
            reader.close()
        restored, ended = [], []
        for key, record in latest.items():
            if (record.timestamp_ms or 0) < since_ms:
                continue  # idle past the TTL (expired while nobody served it)
            offset = int(record.header(OFFSET_HEADER) or b"-1")
            if record.value is None:  # deleted: inputs up to its offset were applied and delivered
                ended.append((key.decode(), offset))
                continue
            if self.version is not None and record.header(VERSION_HEADER) != self.version.encode():
                continue  # another model version's state means nothing to this one
            try:
                state = self.codec.decode(record.value)
            except Exception as exc:  # noqa: BLE001 - one unreadable record must not stop the worker
                log.warning("state changelog %s[%d]@%d for key %r unreadable (%s); the key starts fresh",
                            record.topic, record.partition, record.offset, key, exc)
                continue
            restored.append((key.decode(), record.partition, state, offset, max(0.0, (now_ms - (record.timestamp_ms or 0)) / 1000)))
        self.store.restore(restored, ended)
        seconds = time.monotonic() - started
        self._m_restore.observe(seconds)
        self._m_restored.inc(len(restored))
        log.info("state: restored %d keys of partitions %s from %s in %.2fs", len(restored), sorted(partitions),
                 self.topic, seconds)
        return len(restored)
