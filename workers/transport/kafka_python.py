"""Adapter over kafka-python (pure Python; the default client)."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import kafka
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata

from workers.settings import KafkaSettings
from workers.transport.base import DeliveryCallback, RebalanceListener, produce_each, read_until_ended
from workers.transport.records import MAX_RECORD_BYTES, OutgoingRecord, Record, TopicPartition

log = logging.getLogger(__name__)


def client_config(settings: KafkaSettings) -> dict[str, Any]:
    """Connection and security options in kafka-python's spelling."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers.split(","),
        "security_protocol": settings.security_protocol,
        "request_timeout_ms": settings.request_timeout_ms,
    }
    if settings.sasl_mechanism:
        config["sasl_mechanism"] = settings.sasl_mechanism
        config["sasl_plain_username"] = settings.sasl_username
        config["sasl_plain_password"] = settings.sasl_password.get_secret_value() if settings.sasl_password else None
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        config |= {
            "ssl_cafile": settings.ssl_cafile,
            "ssl_certfile": settings.ssl_certfile,
            "ssl_keyfile": settings.ssl_keyfile,
            "ssl_check_hostname": settings.ssl_check_hostname,
        }
    return config


def _record(m: Any) -> Record:
    return Record(m.topic, m.partition, m.offset, m.key, m.value, list(m.headers or []), m.timestamp)


def _ours(tps: Iterable[kafka.TopicPartition]) -> set[TopicPartition]:
    return {TopicPartition(tp.topic, tp.partition) for tp in tps}


def _theirs(tps: Iterable[TopicPartition]) -> list[kafka.TopicPartition]:
    return [kafka.TopicPartition(tp.topic, tp.partition) for tp in tps]


class _Listener(ConsumerRebalanceListener):
    def __init__(self, listener: RebalanceListener) -> None:
        self.listener = listener

    def on_partitions_revoked(self, revoked: Iterable[kafka.TopicPartition]) -> None:
        self.listener.on_partitions_revoked(_ours(revoked))

    def on_partitions_assigned(self, assigned: Iterable[kafka.TopicPartition]) -> None:
        self.listener.on_partitions_assigned(_ours(assigned))


class KafkaPythonConsumer:
    def __init__(self, settings: KafkaSettings, group_id: str, auto_offset_reset: str, client_id: str) -> None:
        self._consumer = kafka.KafkaConsumer(
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset=auto_offset_reset,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=max(1000, settings.session_timeout_ms // 3),
            **client_config(settings),
        )
        self._next_offset: dict[TopicPartition, int] = {}

    def subscribe(self, topics: list[str], listener: RebalanceListener) -> None:
        self._consumer.subscribe(topics, listener=_Listener(listener))

    def assign_from_beginning(self, topics: list[str], at_end: bool = False) -> None:
        partitions = []
        for topic in topics:
            deadline = time.monotonic() + 10
            while not (found := self._consumer.partitions_for_topic(topic)) and time.monotonic() < deadline:
                time.sleep(0.1)  # metadata for a just-created topic
            if not found:
                raise ValueError(f"topic {topic!r} does not exist")
            partitions += [kafka.TopicPartition(topic, p) for p in sorted(found)]
        self._consumer.assign(partitions)
        if at_end:  # the current end, resolved now, so records produced from here on are read
            for tp, offset in self._consumer.end_offsets(partitions).items():
                self._consumer.seek(tp, offset)
        else:
            self._consumer.seek_to_beginning(*partitions)

    def poll(self, timeout_s: float, max_records: int) -> list[Record]:
        batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        out: list[Record] = []
        for tp, messages in batches.items():
            out += [_record(m) for m in messages]
            self._next_offset[TopicPartition(tp.topic, tp.partition)] = messages[-1].offset + 1
        return out

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if offsets:
            self._consumer.commit(
                {kafka.TopicPartition(tp.topic, tp.partition): OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()}
            )

    def pause(self, partitions: Iterable[TopicPartition]) -> None:
        self._consumer.pause(*_theirs(partitions))

    def resume(self, partitions: Iterable[TopicPartition]) -> None:
        self._consumer.resume(*_theirs(partitions))

    def assignment(self) -> set[TopicPartition]:
        return _ours(self._consumer.assignment())

    def lag(self) -> dict[TopicPartition, int]:
        lags = {}
        for tp in self.assignment():
            high = self._consumer.highwater(kafka.TopicPartition(tp.topic, tp.partition))
            position = self._next_offset.get(tp)
            if high is not None and position is not None:
                lags[tp] = max(0, high - position)
        return lags

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class KafkaPythonPartitionReader:
    """:class:`workers.transport.base.PartitionReader` over kafka-python: the end is the high watermark the
    last fetch of each partition reported."""

    def __init__(self, settings: KafkaSettings, client_id: str) -> None:
        self._timeout_s = settings.request_timeout_ms / 1000
        self._consumer = kafka.KafkaConsumer(
            client_id=client_id,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            **client_config(settings),
        )

    def read_to_end(self, topic: str, partitions: list[int], since_ms: int | None = None) -> Iterator[Record]:
        if not partitions:
            return
        tps = [kafka.TopicPartition(topic, p) for p in partitions]
        self._consumer.assign(tps)
        self._consumer.seek_to_beginning(*tps)
        if since_ms is not None:
            for tp, found in self._consumer.offsets_for_times({tp: since_ms for tp in tps}).items():
                if found is None:
                    self._consumer.seek_to_end(tp)
                else:
                    self._consumer.seek(tp, found.offset)

        def fetch(pending: set[int]) -> tuple[list[Record], bool]:
            batches = self._consumer.poll(timeout_ms=200, max_records=1000)
            for p in list(pending):
                tp = kafka.TopicPartition(topic, p)
                high = self._consumer.highwater(tp)
                if high is not None and self._consumer.position(tp) >= high:
                    pending.discard(p)
            return [_record(m) for messages in batches.values() for m in messages], bool(batches)

        try:
            yield from read_until_ended(fetch, partitions, topic, self._timeout_s)
        finally:
            self._consumer.assign([])

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class KafkaPythonProducer:
    """Delivery callbacks are queued by kafka-python's I/O thread and run on the caller's thread in poll/flush."""

    def __init__(self, settings: KafkaSettings, client_id: str) -> None:
        self._producer = kafka.KafkaProducer(
            client_id=client_id,
            acks="all",
            # The idempotent producer's InitProducerId fails on the embedded broker (UnknownError), so keep
            # retried batches in order the classic way: one request in flight per connection.
            enable_idempotence=False,
            max_in_flight_requests_per_connection=1,
            retries=5,
            linger_ms=1,
            max_request_size=MAX_RECORD_BYTES,
            **client_config(settings),
        )
        self._done: collections.deque[tuple[DeliveryCallback, Exception | None, float]] = collections.deque()
        self._lock = threading.Lock()

    def produce(self, record: OutgoingRecord, on_delivery: DeliveryCallback) -> None:
        future = self._producer.send(record.topic, value=record.value, key=record.key, headers=record.headers,
                                     partition=record.partition)
        future.add_callback(lambda _meta: self._done.append((on_delivery, None, time.time())))
        future.add_errback(lambda exc: self._done.append((on_delivery, exc, time.time())))

    def produce_all(self, records: Sequence[OutgoingRecord], on_delivery: DeliveryCallback) -> None:
        produce_each(self, records, on_delivery)

    def poll(self) -> None:
        with self._lock:  # callbacks run in the order the broker acknowledged them
            while self._done:
                callback, error, acked_at = self._done.popleft()
                callback(error, acked_at)

    def flush(self, timeout_s: float) -> bool:
        try:
            self._producer.flush(timeout=timeout_s)
            ok = True
        except kafka.errors.KafkaTimeoutError:
            ok = False
        self.poll()
        return ok

    def close(self) -> None:
        self._producer.close(timeout=5)


class KafkaPythonTopicAdmin:
    """Creates topics through kafka-python's admin client; raises ``ConnectionError`` when no broker answers."""

    def __init__(self, settings: KafkaSettings) -> None:
        import kafka.admin
        import kafka.errors

        try:
            self._admin = kafka.admin.KafkaAdminClient(client_id="workers-admin", **client_config(settings))
        except kafka.errors.NoBrokersAvailable as exc:
            raise ConnectionError(str(exc)) from None

    def create_missing(self, partitions: Mapping[str, int],
                       configs: Mapping[str, Mapping[str, str]] | None = None) -> list[str]:
        import kafka.errors
        from kafka.admin import NewTopic

        existing = set(self._admin.list_topics())
        replicas = min(3, len(self._admin.describe_cluster().get("brokers", [])) or 1)
        configs = configs or {}
        missing = [NewTopic(name, n, replicas, topic_configs=dict(configs.get(name, {})))
                   for name, n in partitions.items() if name not in existing]
        if missing:
            try:
                self._admin.create_topics(missing)
            except kafka.errors.TopicAlreadyExistsError:
                pass  # another worker won the race
        return [t.name for t in missing]

    def partition_count(self, topic: str) -> int | None:
        described = self._admin.describe_topics([topic])
        if not described or described[0].get("error_code"):
            return None
        return len(described[0]["partitions"])

    def close(self) -> None:
        self._admin.close()
