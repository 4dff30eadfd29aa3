"""Produce to and read from topics through the same transport adapters the workers use.

Used by ``workers send``/``workers tail``, the demo, benchmarks and tests.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator

from workers.settings import KafkaSettings
from workers.transport.base import Reader
from workers.transport.factory import make_consumer, make_producer, make_reader
from workers.transport.records import OutgoingRecord, Record, TopicPartition


class _NoRebalanceWork:
    def on_partitions_revoked(self, partitions: set[TopicPartition]) -> None:
        pass

    def on_partitions_assigned(self, partitions: set[TopicPartition]) -> None:
        pass


def send(settings: KafkaSettings, records: Iterable[OutgoingRecord], timeout_s: float = 60.0) -> int:
    """Produce ``records`` and wait for every acknowledgement; returns how many were acknowledged."""
    producer = make_producer(settings, client_id="workers-client")
    acked: list[Exception | None] = []
    try:
        for record in records:
            producer.produce(record, lambda error, _at: acked.append(error))
            producer.poll()
        if not producer.flush(timeout_s):
            raise TimeoutError(f"not every record was acknowledged within {timeout_s}s")
    finally:
        producer.close()
    errors = [e for e in acked if e is not None]
    if errors:
        raise RuntimeError(f"{len(errors)} records failed: {errors[0]}")
    return len(acked)


def read(
    settings: KafkaSettings,
    topics: list[str],
    group_id: str | None = None,
    idle_timeout_s: float | None = None,
    from_beginning: bool = True,
) -> Iterator[Record]:
    """Yield records of ``topics`` until ``idle_timeout_s`` passes without one (None: forever).

    With a ``group_id`` the reader joins that consumer group (and shares partitions); without one it
    reads every partition from the beginning with no group join, which starts at once.
    """
    consumer: Reader
    if group_id is None and from_beginning:
        consumer = make_reader(settings, topics)
    else:
        grouped = make_consumer(settings, group_id or f"workers-reader-{uuid.uuid4().hex[:8]}",
                                "earliest" if from_beginning else "latest", client_id="workers-reader")
        grouped.subscribe(topics, _NoRebalanceWork())
        consumer = grouped
    last = time.monotonic()
    try:
        while idle_timeout_s is None or time.monotonic() - last < idle_timeout_s:
            for record in consumer.poll(0.2, 500):
                last = time.monotonic()
                yield record
    finally:
        consumer.close()
