"""Adapter over confluent-kafka (librdkafka): about 20x the throughput of kafka-python here."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import confluent_kafka as ck

from workers.settings import KafkaSettings
from workers.transport.base import AllDelivered, DeliveryCallback, RebalanceListener, read_until_ended
from workers.transport.records import MAX_RECORD_BYTES, OutgoingRecord, Record, TopicPartition

log = logging.getLogger(__name__)


def client_config(settings: KafkaSettings) -> dict[str, Any]:
    """Connection and security options in librdkafka's spelling."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers,
        "security.protocol": settings.security_protocol.lower(),
        "socket.timeout.ms": settings.request_timeout_ms,
    }
    if settings.sasl_mechanism:
        config["sasl.mechanism"] = settings.sasl_mechanism
        config["sasl.username"] = settings.sasl_username
        config["sasl.password"] = settings.sasl_password.get_secret_value() if settings.sasl_password else None
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        optional = {
            "ssl.ca.location": settings.ssl_cafile,
            "ssl.certificate.location": settings.ssl_certfile,
            "ssl.key.location": settings.ssl_keyfile,
        }
        config |= {k: v for k, v in optional.items() if v}
        config["ssl.endpoint.identification.algorithm"] = "https" if settings.ssl_check_hostname else "none"
    return config


def _record(m: ck.Message) -> Record:
    _ts_type, ts = m.timestamp()
    return Record(m.topic(), m.partition(), m.offset(), m.key(), m.value(), m.headers() or [], ts)


def _ours(tps: Iterable[ck.TopicPartition]) -> set[TopicPartition]:
    return {TopicPartition(tp.topic, tp.partition) for tp in tps}


def _theirs(tps: Iterable[TopicPartition]) -> list[ck.TopicPartition]:
    return [ck.TopicPartition(tp.topic, tp.partition) for tp in tps]


class ConfluentConsumer:
    def __init__(self, settings: KafkaSettings, group_id: str, auto_offset_reset: str, client_id: str,
                 instance_id: str | None = None) -> None:
        static = {"group.instance.id": instance_id} if instance_id else {}
        self._consumer = ck.Consumer(
            client_config(settings)
            | static
            | {
                "group.id": group_id,
                "client.id": client_id,
                "enable.auto.commit": False,
                "auto.offset.reset": auto_offset_reset,
                "fetch.wait.max.ms": settings.fetch_max_wait_ms,
                "session.timeout.ms": settings.session_timeout_ms,
                "heartbeat.interval.ms": max(1000, settings.session_timeout_ms // 3),
                "logger": logging.getLogger("librdkafka.consumer"),
            }
        )
        self._next_offset: dict[TopicPartition, int] = {}
        self._revoked_in_consume: set[TopicPartition] | None = None
        """While :meth:`poll` takes the buffered records: the partitions revoked meanwhile."""

    def subscribe(self, topics: list[str], listener: RebalanceListener) -> None:
        def on_assign(_c: ck.Consumer, tps: list[ck.TopicPartition]) -> None:
            listener.on_partitions_assigned(_ours(tps))

        def on_revoke(_c: ck.Consumer, tps: list[ck.TopicPartition]) -> None:
            listener.on_partitions_revoked(_ours(tps))
            for tp in _ours(tps):
                self._next_offset.pop(tp, None)
            if self._revoked_in_consume is not None:
                self._revoked_in_consume |= _ours(tps)

        self._consumer.subscribe(topics, on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)

    def assign_from_beginning(self, topics: list[str], at_end: bool = False) -> None:
        partitions = []
        for topic in topics:
            metadata = self._consumer.list_topics(topic, timeout=10).topics.get(topic)
            if metadata is None or metadata.error is not None or not metadata.partitions:
                raise ValueError(f"topic {topic!r} does not exist")
            for p in sorted(metadata.partitions):
                if at_end:  # the current end, resolved now, so records produced from here on are read
                    _low, high = self._consumer.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=10)
                    partitions.append(ck.TopicPartition(topic, p, high))
                else:
                    partitions.append(ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING))
        self._consumer.assign(partitions)

    def poll(self, timeout_s: float, max_records: int) -> list[Record]:
        # consume(n, timeout) waits until it has n messages or the timeout ends, which at low rates is
        # pure latency: block for the first message only, then take what is already buffered.
        first = self._consumer.poll(timeout_s)
        if first is None:
            return []
        self._revoked_in_consume = set()
        try:
            rest = self._consumer.consume(num_messages=max_records - 1, timeout=0) if max_records > 1 else []
        finally:
            revoked, self._revoked_in_consume = self._revoked_in_consume, None
        if TopicPartition(first.topic(), first.partition()) in revoked:
            # consume() ran a rebalance that revoked the first record's partition: the worker has handed its
            # keys' state over, and whoever owns it now (this worker too, once reassigned) reads the record
            # again from the committed offset. librdkafka drops such records among consume()'s own; this one
            # came from the poll() before it.
            log.info("dropped %s[%d]@%d: fetched before its partition was revoked", first.topic(),
                     first.partition(), first.offset())
            first = None
        out: list[Record] = []
        for m in [first, *rest] if first is not None else rest:
            if error := m.error():
                if error.code() != ck.KafkaError._PARTITION_EOF:
                    log.warning("consumer error: %s", error)
                continue
            out.append(_record(m))
        for record in out:  # in offset order within a partition: the last one's position stays
            self._next_offset[record.tp] = record.offset + 1
        return out

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if offsets:
            self._consumer.commit(
                offsets=[ck.TopicPartition(tp.topic, tp.partition, o) for tp, o in offsets.items()],
                asynchronous=False,
            )

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        self._consumer.pause(_theirs(partitions))

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        self._consumer.resume(_theirs(partitions))

    def assignment(self) -> set[TopicPartition]:
        return _ours(self._consumer.assignment())

    def lag(self) -> dict[TopicPartition, int]:
        lags = {}
        for tp in self.assignment():
            position = self._next_offset.get(tp)
            if position is None:
                continue
            _low, high = self._consumer.get_watermark_offsets(ck.TopicPartition(tp.topic, tp.partition), cached=True)
            if high is not None and high >= 0:
                lags[tp] = max(0, high - position)
        return lags

    def close(self) -> None:
        self._consumer.close()


class ConfluentPartitionReader:
    """:class:`workers.transport.base.PartitionReader` over librdkafka: the end is where a fetch reports
    end of partition (the embedded broker's ListOffsets answers a wrong high watermark, its fetches a right one)."""

    def __init__(self, settings: KafkaSettings, client_id: str) -> None:
        self._timeout_s = settings.request_timeout_ms / 1000
        self._consumer = ck.Consumer(
            client_config(settings)
            | {
                "group.id": f"{client_id}-reader",  # never joined, never committed: assign() only
                "client.id": client_id,
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "fetch.wait.max.ms": settings.fetch_max_wait_ms,
                "logger": logging.getLogger("librdkafka.reader"),
            }
        )

    def read_to_end(self, topic: str, partitions: list[int], since_ms: int | None = None) -> Iterator[Record]:
        if not partitions:
            return
        starts = [ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in partitions]
        if since_ms is not None:
            found = self._consumer.offsets_for_times([ck.TopicPartition(topic, p, since_ms) for p in partitions],
                                                     timeout=self._timeout_s)
            starts = [ck.TopicPartition(topic, f.partition, f.offset if f.offset >= 0 else ck.OFFSET_END) for f in found]
        self._consumer.assign(starts)

        def fetch(pending: set[int]) -> tuple[list[Record], bool]:
            messages = self._consumer.consume(num_messages=1000, timeout=0.2)
            records = []
            for m in messages:
                error = m.error()
                if error is None:
                    records.append(_record(m))
                elif error.code() == ck.KafkaError._PARTITION_EOF:
                    pending.discard(m.partition())
                else:
                    log.warning("reading %s: %s", topic, error)
            return records, bool(messages)

        try:
            yield from read_until_ended(fetch, partitions, topic, self._timeout_s)
        finally:
            self._consumer.unassign()

    def close(self) -> None:
        self._consumer.close()


def _acked_at(sent_at: float, msg: ck.Message | None) -> float:
    """When the broker's acknowledgement came: the send time plus librdkafka's measured latency."""
    latency = msg.latency() if msg is not None else None
    return sent_at + latency if latency is not None else time.time()


class _Group(AllDelivered):
    """:class:`AllDelivered` for librdkafka: its bound :meth:`delivered` is each record's callback itself, so an
    acknowledgement that is not the group's last costs one Python call and a decrement."""

    __slots__ = ("sent_at",)

    def __init__(self, count: int, on_delivery: DeliveryCallback, sent_at: float) -> None:
        super().__init__(count, on_delivery)
        self.sent_at = sent_at

    def delivered(self, error: ck.KafkaError | None, msg: ck.Message) -> None:
        if error is None and self.remaining > 1:
            self.remaining -= 1
        elif error is None:
            self(None, _acked_at(self.sent_at, msg))
        else:
            self(ck.KafkaException(error), time.time())


class ConfluentProducer:
    def __init__(self, settings: KafkaSettings, client_id: str) -> None:
        self._producer = ck.Producer(
            client_config(settings)
            | {
                "client.id": client_id,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 1,
                "message.max.bytes": MAX_RECORD_BYTES,
                "logger": logging.getLogger("librdkafka.producer"),
            }
        )

    def produce(self, record: OutgoingRecord, on_delivery: DeliveryCallback) -> None:
        sent_at = time.time()

        def delivered(error: ck.KafkaError | None, msg: ck.Message) -> None:
            on_delivery(None if error is None else ck.KafkaException(error), _acked_at(sent_at, msg))

        self._send(record, delivered)

    def produce_all(self, records: Sequence[OutgoingRecord], on_delivery: DeliveryCallback) -> None:
        if not records:
            on_delivery(None, time.time())
            return
        delivered = _Group(len(records), on_delivery, time.time()).delivered  # one bound method for the group
        for record in records:
            self._send(record, delivered)

    def _send(self, record: OutgoingRecord, delivered: Callable[[ck.KafkaError | None, ck.Message], None]) -> None:
        while True:
            try:
                if record.partition is None:
                    self._producer.produce(record.topic, record.value, record.key, headers=record.headers,
                                           on_delivery=delivered)
                else:
                    self._producer.produce(record.topic, record.value, record.key, record.partition,
                                           headers=record.headers, on_delivery=delivered)
                return
            except BufferError:  # local queue full: serve callbacks and retry
                self._producer.poll(0.05)

    def poll(self) -> None:
        self._producer.poll(0)

    def flush(self, timeout_s: float) -> bool:
        return self._producer.flush(timeout_s) == 0

    def close(self) -> None:
        self._producer.flush(5)


class ConfluentTopicAdmin:
    """Creates topics through librdkafka's admin API; raises ``ConnectionError`` when no broker answers."""

    def __init__(self, settings: KafkaSettings) -> None:
        from confluent_kafka.admin import AdminClient

        self._timeout_s = settings.request_timeout_ms / 1000
        self._admin = AdminClient(client_config(settings) | {"logger": logging.getLogger("librdkafka.admin")})
        try:
            self._admin.list_topics(timeout=min(self._timeout_s, 5.0))
        except ck.KafkaException as exc:
            raise ConnectionError(str(exc)) from None

    def create_missing(self, partitions: Mapping[str, int],
                       configs: Mapping[str, Mapping[str, str]] | None = None) -> list[str]:
        from confluent_kafka.admin import NewTopic

        metadata = self._admin.list_topics(timeout=self._timeout_s)
        replicas = min(3, len(metadata.brokers) or 1)
        configs = configs or {}
        missing = [NewTopic(name, n, replicas, config=dict(configs.get(name, {})))
                   for name, n in partitions.items() if name not in metadata.topics]
        if not missing:
            return []
        for topic, future in self._admin.create_topics(missing, operation_timeout=self._timeout_s).items():
            try:
                future.result(self._timeout_s)
            except ck.KafkaException as exc:
                if exc.args[0].code() != ck.KafkaError.TOPIC_ALREADY_EXISTS:  # else another worker won the race
                    raise RuntimeError(f"creating topic {topic!r}: {exc}") from None
        return [t.topic for t in missing]

    def partition_count(self, topic: str) -> int | None:
        found = self._admin.list_topics(topic, timeout=self._timeout_s).topics.get(topic)
        return None if found is None or found.error is not None else len(found.partitions)

    def close(self) -> None:
        pass  # AdminClient has no close; its threads end with the object
