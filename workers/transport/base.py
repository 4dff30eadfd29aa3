"""The small Kafka client interface both adapters implement.

It is the minimum the engine needs: manual commits, pause/resume for backpressure,
a rebalance listener (aiokafka's idea) and a delivery callback per produced record, or one per group of
records (:meth:`Producer.produce_all`: the engine acknowledges a batch's records together).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Protocol

from workers.transport.records import OutgoingRecord, Record, TopicPartition

DeliveryCallback = Callable[[Exception | None, float], None]
"""Called once per produced record with ``(error or None, acked_at)``; ``acked_at`` is the wall-clock time
the broker's acknowledgement arrived (not the later moment the callback is served)."""


class RebalanceListener(Protocol):
    """Told about partition ownership changes, from inside :meth:`Consumer.poll`."""

    def on_partitions_revoked(self, partitions: set[TopicPartition]) -> None:
        """Last chance to finish work and commit offsets for ``partitions`` before another member owns them."""

    def on_partitions_assigned(self, partitions: set[TopicPartition]) -> None:
        """``partitions`` are now ours."""


class Consumer(Protocol):
    def subscribe(self, topics: list[str], listener: RebalanceListener) -> None: ...

    def poll(self, timeout_s: float, max_records: int) -> list[Record]:
        """Fetch up to ``max_records`` records, waiting at most ``timeout_s``; may run rebalance callbacks."""
        ...

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Synchronously commit ``offsets`` (the next offset to read, Kafka's convention)."""
        ...

    def pause(self, partitions: Iterable[TopicPartition]) -> None: ...

    def resume(self, partitions: Iterable[TopicPartition]) -> None: ...

    def assignment(self) -> set[TopicPartition]: ...

    def lag(self) -> dict[TopicPartition, int]:
        """Messages between our position and the log end, per assigned partition, from the last fetch."""
        ...

    def close(self) -> None:
        """Leave the group (triggers a rebalance for the others) and close connections."""
        ...


class Reader(Protocol):
    """What tools read topics with (``workers tail``, the mic client, the demo, tests): every partition,
    outside any group, already positioned (:func:`workers.transport.factory.make_reader`)."""

    def poll(self, timeout_s: float, max_records: int) -> list[Record]: ...

    def close(self) -> None: ...


class PartitionReader(Protocol):
    """Reads chosen partitions of a topic to their current end, outside any group: how a worker restores
    its state from a changelog before it processes the input partitions it was just given."""

    def read_to_end(self, topic: str, partitions: list[int], since_ms: int | None = None) -> Iterator[Record]:
        """Every record of ``partitions`` from their start (or the first at or after ``since_ms``, where the
        broker can look offsets up by time) up to the end they had when reading began."""
        ...

    def close(self) -> None: ...


def read_until_ended(fetch: Callable[[set[int]], tuple[list[Record], bool]], partitions: list[int], topic: str,
                     timeout_s: float) -> Iterator[Record]:
    """The loop of both clients' :meth:`PartitionReader.read_to_end`: ``fetch(pending)`` returns what it fetched
    (and whether it fetched anything at all) and drops from ``pending`` the partitions that reached their end.
    TimeoutError after ``timeout_s`` without anything fetched."""
    pending = set(partitions)
    last_progress = time.monotonic()
    while pending:
        records, progressed = fetch(pending)
        if progressed:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > timeout_s:
            raise TimeoutError(f"reading {topic} partitions {sorted(pending)}: no progress in {timeout_s:.0f}s")
        yield from records


class TopicAdmin(Protocol):
    """Topic creation through one client library's admin API."""

    def create_missing(self, partitions: Mapping[str, int],
                       configs: Mapping[str, Mapping[str, str]] | None = None) -> list[str]:
        """Create the topics of ``partitions`` (name -> partition count) that do not exist, with their
        ``configs`` (name -> topic config, e.g. ``cleanup.policy``); returns their names."""
        ...

    def partition_count(self, topic: str) -> int | None:
        """How many partitions ``topic`` has; None when it does not exist."""
        ...

    def close(self) -> None: ...


class AllDelivered:
    """A group's delivery callback: calls ``on_delivery`` once, when the last of ``count`` records is
    acknowledged (with that one's ``acked_at``), or at the first refusal (with its error)."""

    __slots__ = ("remaining", "on_delivery")

    def __init__(self, count: int, on_delivery: DeliveryCallback) -> None:
        self.remaining, self.on_delivery = count, on_delivery

    def __call__(self, error: Exception | None, acked_at: float) -> None:
        if self.remaining <= 0:  # already reported: a refusal came first
            return
        if error is not None:
            self.remaining = 0
            self.on_delivery(error, acked_at)
            return
        self.remaining -= 1
        if self.remaining == 0:
            self.on_delivery(None, acked_at)


def produce_each(producer: Producer, records: Sequence[OutgoingRecord], on_delivery: DeliveryCallback) -> None:
    """:meth:`Producer.produce_all` for a client without a cheaper way: a record at a time, one count."""
    if not records:
        on_delivery(None, time.time())
        return
    group = AllDelivered(len(records), on_delivery)
    for record in records:
        producer.produce(record, group)


class Producer(Protocol):
    def produce(self, record: OutgoingRecord, on_delivery: DeliveryCallback) -> None: ...

    def produce_all(self, records: Sequence[OutgoingRecord], on_delivery: DeliveryCallback) -> None:
        """Produce ``records`` in order with one callback for all of them (:class:`AllDelivered`'s rule): the
        engine's way, since a Python call per acknowledgement was a tenth of its time a message."""
        ...

    def poll(self) -> None:
        """Serve pending delivery callbacks without blocking."""
        ...

    def flush(self, timeout_s: float) -> bool:
        """Wait until every produced record is acknowledged (callbacks served). False on timeout."""
        ...

    def close(self) -> None: ...
