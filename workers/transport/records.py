"""Client-neutral record types, so the engine never sees kafka-python or librdkafka objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


class TopicPartition(NamedTuple):
    topic: str
    partition: int


_INTERNED: dict[tuple[str, int], TopicPartition] = {}
"""One shared :class:`TopicPartition` per (topic, partition): the engine asks a record for it four or five times a
message, and building a named tuple costs 4x a dict lookup (0.32 against 0.08 us)."""


def _intern(key: tuple[str, int]) -> TopicPartition:
    return _INTERNED.setdefault(key, TopicPartition(*key))


Headers = list[tuple[str, bytes]]
MAX_RECORD_BYTES = 16 << 20
"""The largest record the producers send (the clients' default is 1 MB): an audio stream's state carries its
open segment's audio, up to ~2 MB at the 30 s segment bound. Topics that take such records say so
(``max.message.bytes``); the broker's own limit still applies to the others."""


@dataclass(slots=True)
class Record:
    """One consumed Kafka record (not frozen, only for speed: a frozen dataclass is 4x slower to build, and one is
    built per message; nothing changes a record once consumed)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)
    timestamp_ms: int | None = None

    @property
    def tp(self) -> TopicPartition:
        key = (self.topic, self.partition)
        tp = _INTERNED.get(key)
        return tp if tp is not None else _intern(key)

    def header(self, name: str) -> bytes | None:
        """Last value of header ``name`` (Kafka allows repeats; the last one wins)."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value
        return found


@dataclass(slots=True)
class OutgoingRecord:
    """One record to produce; ``value`` None is a tombstone (a compacted topic's delete), ``partition`` None
    leaves the choice to the client's partitioner (by key)."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    headers: Headers = field(default_factory=list)
    partition: int | None = None
