"""The librdkafka consumer wrapper's poll: no record reaches the engine from a partition revoked before it
was handed over (the revoke runs inside librdkafka's consume(), after the poll() that fetched it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import confluent_kafka as ck

from workers.settings import KafkaSettings
from workers.transport.base import TopicPartition
from workers.transport.confluent import ConfluentConsumer


class Message:
    """What librdkafka hands the application for one record."""

    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return "in"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return b"v"

    def headers(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return ck.TIMESTAMP_CREATE_TIME, 1


class Librdkafka:
    """poll() returns one buffered record; consume() serves a queued revoke first, as librdkafka serves its
    rebalance op in whichever call reaches it, then returns the rest (librdkafka itself drops those fetched
    before the revoke)."""

    def __init__(self, first: Message, rest: list[Message], revoke: list[int]) -> None:
        self.first, self.rest, self.revoke = first, rest, revoke
        self.on_revoke: Callable[[Any, list[ck.TopicPartition]], None] | None = None

    def subscribe(self, topics: list[str], on_assign: Any, on_revoke: Any, on_lost: Any) -> None:
        self.on_revoke = on_revoke

    def poll(self, timeout: float) -> Message:
        return self.first

    def consume(self, num_messages: int, timeout: float) -> list[Message]:
        if self.revoke:
            assert self.on_revoke is not None
            self.on_revoke(self, [ck.TopicPartition("in", p) for p in self.revoke])
        return self.rest


class Listener:
    def __init__(self) -> None:
        self.revoked: list[set[TopicPartition]] = []

    def on_partitions_revoked(self, partitions: set[TopicPartition]) -> None:
        self.revoked.append(partitions)

    def on_partitions_assigned(self, partitions: set[TopicPartition]) -> None:
        pass


def consumer(inner: Librdkafka) -> tuple[ConfluentConsumer, Listener]:
    wrapper = ConfluentConsumer(KafkaSettings(bootstrap_servers="127.0.0.1:1"), "g", "earliest", "test")
    wrapper._consumer.close()
    wrapper._consumer = inner  # type: ignore[assignment]
    listener = Listener()
    wrapper.subscribe(["in"], listener)  # type: ignore[arg-type]
    return wrapper, listener


def test_a_record_fetched_before_its_partition_was_revoked_is_not_returned() -> None:
    wrapper, listener = consumer(Librdkafka(Message(2, 121), [Message(0, 7)], revoke=[0, 1, 2, 3]))
    records = wrapper.poll(0.1, 10)
    assert listener.revoked == [{TopicPartition("in", p) for p in range(4)}]  # the engine handed their state over
    assert [(r.partition, r.offset) for r in records] == [(0, 7)]  # librdkafka's own: fetched after, kept


def test_a_revoke_of_other_partitions_keeps_the_record_and_none_keeps_everything() -> None:
    wrapper, _ = consumer(Librdkafka(Message(2, 121), [Message(2, 122)], revoke=[0]))
    assert [(r.partition, r.offset) for r in wrapper.poll(0.1, 10)] == [(2, 121), (2, 122)]
    wrapper, _ = consumer(Librdkafka(Message(2, 121), [], revoke=[]))
    assert [(r.partition, r.offset) for r in wrapper.poll(0.1, 10)] == [(2, 121)]
