"""Per-key state (a stream, session or conversation) with idle expiry and a cap on keys held.

Keys live in least-recently-used order, so both expiry and eviction look only at the front.
Eviction is logged and reported through ``on_evict`` (a metric), never silent. Each key also remembers the
input offset its state reflects, so a changelog (:mod:`workers.engine.changelog`) can restore it and
a re-read input is not applied twice.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

S = TypeVar("S")
log = logging.getLogger(__name__)
EVICTION_LOG_EVERY_S = 10.0


@dataclass
class _Entry(Generic[S]):
    value: S
    partition: int
    touched: float
    offset: int = -1
    """The input offset (in ``partition``) of the last message applied to this state; -1 before any."""


class KeyedState(Generic[S]):
    def __init__(
        self,
        factory: Callable[[], S],
        ttl_s: float,
        max_keys: int,
        on_evict: Callable[[str, int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = factory
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self._on_evict = on_evict or (lambda reason, n: None)
        self._clock = clock
        self._entries: OrderedDict[str, _Entry[S]] = OrderedDict()
        self._unlogged_evictions = 0
        self._last_eviction_log = float("-inf")
        self.on_removed: Callable[[str, int, int], None] | None = None
        """Told of each key dropped for good (expiry, eviction, pop) with its partition and offset, not of keys
        moved to another worker."""
        self._ended: OrderedDict[str, int] = OrderedDict()
        """Keys deleted before a restore, with the last input offset applied to them (at most ``max_keys``)."""

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def items(self) -> Iterator[tuple[str, S]]:
        return ((k, e.value) for k, e in self._entries.items())

    def get(self, key: str, partition: int) -> S:
        """The key's state, created on first use; marks the key as recently used."""
        entry = self._entries.get(key)
        now = self._clock()
        if entry is None:
            if len(self._entries) >= self.max_keys:
                self._evict_oldest()
            entry = self._entries[key] = _Entry(self._factory(), partition, now)
        else:
            entry.touched = now
            entry.partition = partition
            self._entries.move_to_end(key)
        return entry.value

    def lookup(self, key: str, partition: int) -> S | None:
        """The key's state if held (marked as recently used), else None; never creates."""
        if key not in self._entries:
            return None
        return self.get(key, partition)

    def put(self, key: str, partition: int, value: S) -> None:
        """Hold ``value`` as the key's state (replacing any), evicting the least recently used key at the cap."""
        self._entries.pop(key, None)
        if len(self._entries) >= self.max_keys:
            self._evict_oldest()
        self._entries[key] = _Entry(value, partition, self._clock())

    def reflects(self, key: str, offset: int) -> bool:
        """Whether the key's state already includes the input at ``offset`` (a re-read after a restore)."""
        entry = self._entries.get(key)
        if entry is not None:
            return entry.offset >= offset
        ended = self._ended.get(key)
        return ended is not None and ended >= offset

    def peek(self, key: str) -> S | None:
        """The key's state if held, without marking it used."""
        entry = self._entries.get(key)
        return None if entry is None else entry.value

    def applied(self, key: str, offset: int) -> tuple[S, int] | None:
        """Record that the input at ``offset`` was applied to the key's state; returns (state, partition),
        or None when the key holds no state."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        entry.offset = max(entry.offset, offset)
        return entry.value, entry.partition

    def restore(self, restored: Iterable[tuple[str, int, S, int, float]],
                ended: Iterable[tuple[str, int]] = ()) -> None:
        """Hold restored state: ``(key, partition, state, offset, idle seconds)`` each, as if last touched
        that long ago, so expiry goes on where it left off; the least recently used stay first, and past the
        cap the oldest are evicted. ``ended``: ``(key, offset)`` of keys deleted, so re-read inputs up to
        that offset are known as applied."""
        for key, offset in ended:
            self._ended[key] = offset
            self._ended.move_to_end(key)
        while len(self._ended) > self.max_keys:
            self._ended.popitem(last=False)
        now = self._clock()
        for key, partition, value, offset, idle_s in restored:
            self._entries.pop(key, None)
            self._entries[key] = _Entry(value, partition, now - idle_s, offset)
        self._entries = OrderedDict(sorted(self._entries.items(), key=lambda kv: kv[1].touched))
        while len(self._entries) > self.max_keys:
            self._evict_oldest()

    def adopt(self, other: KeyedState[S]) -> None:
        """Take over ``other``'s keys (a new model version keeping the conversations it inherits)."""
        self._entries = other._entries
        other._entries = OrderedDict()

    def pop(self, key: str) -> S | None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        self._removed(key, entry)
        return entry.value

    def _removed(self, key: str, entry: _Entry[S]) -> None:
        if self.on_removed is not None:
            self.on_removed(key, entry.partition, entry.offset)

    def expire(self) -> list[tuple[str, S]]:
        """Drop keys idle for longer than the TTL; returns them with their state (a worker may owe a last
        result for one, e.g. the final of a stream that went quiet)."""
        cutoff = self._clock() - self.ttl_s
        expired: list[tuple[str, S]] = []
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if entry.touched > cutoff:
                break
            del self._entries[key]
            self._removed(key, entry)
            expired.append((key, entry.value))
        if expired:
            log.info("state: expired %d idle keys (ttl %.0fs), %d held", len(expired), self.ttl_s, len(self._entries))
            self._on_evict("ttl", len(expired))
        return expired

    def drop_partitions(self, partitions: set[int]) -> int:
        """Forget keys of partitions this worker no longer owns (their new owner rebuilds them)."""
        doomed = [k for k, e in self._entries.items() if e.partition in partitions]
        for key in doomed:
            del self._entries[key]
        if doomed:
            self._on_evict("rebalance", len(doomed))
        return len(doomed)

    def _evict_oldest(self) -> None:
        key, entry = self._entries.popitem(last=False)
        self._removed(key, entry)
        self._on_evict("capacity", 1)
        self._unlogged_evictions += 1
        now = self._clock()
        if now - self._last_eviction_log >= EVICTION_LOG_EVERY_S:  # a key flood must not become a log flood
            log.warning("state: %d keys held (the cap); evicted %d least recently used keys since the last report "
                        "(latest %r)", self.max_keys, self._unlogged_evictions, key)
            self._unlogged_evictions = 0
            self._last_eviction_log = now
