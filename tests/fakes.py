"""In-memory transport (Bytewax's TestingSource/TestingSink idea): drives the engine without a broker."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from workers.transport.base import DeliveryCallback, RebalanceListener, produce_each
from workers.transport.records import OutgoingRecord, Record, TopicPartition


class FakeConsumer:
    def __init__(self, records: Iterable[Record], partitions: Iterable[TopicPartition]) -> None:
        self.pending = list(records)
        self.partitions = set(partitions)
        self.paused: set[TopicPartition] = set()
        self.commits: list[dict[TopicPartition, int]] = []
        self.listener: RebalanceListener | None = None
        self.closed = False

    def subscribe(self, topics: list[str], listener: RebalanceListener) -> None:
        self.listener = listener
        listener.on_partitions_assigned(set(self.partitions))

    def poll(self, timeout_s: float, max_records: int) -> list[Record]:
        out = []
        for record in list(self.pending):
            if len(out) >= max_records:
                break
            if record.tp in self.paused or record.tp not in self.partitions:
                continue
            out.append(record)
            self.pending.remove(record)
        return out

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))

    def committed(self) -> dict[TopicPartition, int]:
        merged: dict[TopicPartition, int] = {}
        for commit in self.commits:
            merged |= commit
        return merged

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        self.paused |= set(partitions)

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        self.paused -= set(partitions)

    def assignment(self) -> set[TopicPartition]:
        return set(self.partitions)

    def lag(self) -> dict[TopicPartition, int]:
        return {tp: sum(1 for r in self.pending if r.tp == tp) for tp in self.partitions}

    def revoke(self, partitions: set[TopicPartition]) -> None:
        assert self.listener is not None
        self.listener.on_partitions_revoked(partitions)
        self.partitions -= partitions

    def close(self) -> None:
        self.closed = True


class FakeProducer:
    """Acknowledges on poll/flush; ``hold=True`` keeps records unacknowledged until released."""

    def __init__(self, hold: bool = False, fail_topic: str | None = None) -> None:
        self.hold = hold
        self.fail_topic = fail_topic
        self.unacked: list[tuple[OutgoingRecord, DeliveryCallback]] = []
        self.acked: list[OutgoingRecord] = []
        self.closed = False

    def produce(self, record: OutgoingRecord, on_delivery: DeliveryCallback) -> None:
        self.unacked.append((record, on_delivery))

    def produce_all(self, records: Sequence[OutgoingRecord], on_delivery: DeliveryCallback) -> None:
        produce_each(self, records, on_delivery)

    def release(self) -> None:
        batch, self.unacked = self.unacked, []
        for record, callback in batch:
            if record.topic == self.fail_topic:
                callback(RuntimeError("broker said no"), 0.0)
            else:
                self.acked.append(record)
                callback(None, 0.0)

    def poll(self) -> None:
        if not self.hold:
            self.release()

    def flush(self, timeout_s: float) -> bool:
        if self.hold:
            return not self.unacked
        self.release()
        return True

    def close(self) -> None:
        self.closed = True

    def topic(self, name: str) -> list[OutgoingRecord]:
        return [r for r in self.acked if r.topic == name]
