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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from workers import metrics as m
from workers.transport.base import DeliveryCallback, PartitionReader
from workers.transport.records import OutgoingRecord, Record

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
    twice the state TTL (at least an hour)."""
    return {"cleanup.policy": "compact,delete", "retention.ms": str(int(max(2 * ttl_s, 3600) * 1000))}


@dataclass(eq=False)
class StateWrite:
    """A key's state record, owed once the results of the inputs it reflects are acknowledged and the key's
    previous record was produced."""

    record: OutgoingRecord
    waiting: int
    """Inputs it reflects whose results are not acknowledged yet."""
    completions: list[Any] = field(default_factory=list)
    """The engine's completions of those inputs, finished when this record is acknowledged."""
    after: StateWrite | None = None
    """The key's previous record while it is not produced yet (records of a key go out in order)."""
    produced: bool = False
    next: StateWrite | None = None


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
        self._m_records = m.STATE_CHANGELOG_RECORDS.labels(worker=worker)
        self._m_bytes = m.STATE_CHANGELOG_BYTES.labels(worker=worker)
        self._m_pending = m.STATE_CHANGELOG_PENDING.labels(worker=worker)
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
        self.store.on_removed = self._tombstone

    # -- writing ---------------------------------------------------------------------------------

    def already_applied(self, item: Pending[Any]) -> bool:
        """A re-read input its key's restored state already reflects (and whose results were delivered)."""
        if self.store.reflects(item.key, item.record.offset):
            self._m_skipped.inc()
            return True
        return False

    def writes_for(self, batch: list[Pending[Any]]) -> dict[tuple[Any, int], StateWrite]:
        """After ``batch`` was processed: one write per key that holds state, by each input it reflects."""
        by_key: dict[str, list[Pending[Any]]] = {}
        for item in batch:
            by_key.setdefault(item.key, []).append(item)
        writes: dict[tuple[Any, int], StateWrite] = {}
        for key, items in by_key.items():
            offset = max(item.record.offset for item in items)
            held = self.store.applied(key, offset)
            if held is None:
                continue  # nothing held for it (e.g. rejected before any state was made)
            state, partition = held
            data = self.codec.encode(state)
            write = self._chain(key, OutgoingRecord(self.topic, data, key.encode(), self._headers(offset), partition),
                                waiting=len(items))
            for item in items:
                writes[(item.record.tp, item.record.offset)] = write
        return writes

    @property
    def pending(self) -> int:
        """State records owed or in flight: the inputs they reflect are not committable yet."""
        return len(self._unacknowledged)

    def results_acknowledged(self, write: StateWrite, completion: Any) -> None:
        """One input's results are acknowledged: its key's record may go out now."""
        write.completions.append(completion)
        write.waiting -= 1
        self._release(write)

    def _headers(self, offset: int) -> list[tuple[str, bytes]]:
        headers = [(OFFSET_HEADER, str(offset).encode())]
        if self.version is not None:
            headers.append((VERSION_HEADER, self.version.encode()))
        return headers

    def _chain(self, key: str, record: OutgoingRecord, waiting: int) -> StateWrite:
        previous = self._last.get(key)
        write = StateWrite(record, waiting, after=previous if previous is not None and not previous.produced else None)
        if write.after is not None:
            write.after.next = write
        self._last[key] = write
        self._unacknowledged.add(write)
        self._m_pending.set(self.pending)
        return write

    def _release(self, write: StateWrite | None) -> None:
        while write is not None and write.waiting == 0 and not write.produced and (write.after is None or write.after.produced):
            write.produced = True
            self._m_records.inc()
            self._m_bytes.inc(len(write.record.value or b""))
            self._produce(write.record, lambda error, acked_at, w=write: self._acknowledged(w, error, acked_at))
            write = write.next

    def _acknowledged(self, write: StateWrite, error: Exception | None, acked_at: float) -> None:
        if error is None:
            self._unacknowledged.discard(write)
            self._m_pending.set(self.pending)
            key = (write.record.key or b"").decode()
            if self._last.get(key) is write:
                del self._last[key]
        self._written(write, error, acked_at)

    def _tombstone(self, key: str, partition: int) -> None:
        """A key dropped for good: delete it from the changelog, after its last state record."""
        write = self._chain(key, OutgoingRecord(self.topic, None, key.encode(), [], partition), waiting=0)
        self._release(write)

    def forget(self, partitions: set[int]) -> None:
        """Partitions moved away (after the engine drained them): nothing of theirs is owed any more."""
        for key in [k for k, w in self._last.items() if w.record.partition in partitions]:
            del self._last[key]
        self._unacknowledged = {w for w in self._unacknowledged if w.record.partition not in partitions}
        self._m_pending.set(self.pending)

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
        restored = []
        for key, record in latest.items():
            if record.value is None or (record.timestamp_ms or 0) < since_ms:
                continue  # deleted, or idle past the TTL (expired while nobody served it)
            if self.version is not None and record.header(VERSION_HEADER) != self.version.encode():
                continue  # another model version's state means nothing to this one
            try:
                state = self.codec.decode(record.value)
                offset = int(record.header(OFFSET_HEADER) or b"-1")
            except Exception as exc:  # noqa: BLE001 - one unreadable record must not stop the worker
                log.warning("state changelog %s[%d]@%d for key %r unreadable (%s); the key starts fresh",
                            record.topic, record.partition, record.offset, key, exc)
                continue
            restored.append((key.decode(), record.partition, state, offset, max(0.0, (now_ms - (record.timestamp_ms or 0)) / 1000)))
        self.store.restore(restored)
        seconds = time.monotonic() - started
        self._m_restore.observe(seconds)
        self._m_restored.inc(len(restored))
        log.info("state: restored %d keys of partitions %s from %s in %.2fs", len(restored), sorted(partitions),
                 self.topic, seconds)
        return len(restored)
