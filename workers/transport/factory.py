"""Builds consumers, producers and topics for the configured client library."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping

from workers.settings import KafkaSettings
from workers.transport.base import Consumer, PartitionReader, Producer, Reader, TopicAdmin

log = logging.getLogger(__name__)


def make_consumer(settings: KafkaSettings, group_id: str, auto_offset_reset: str, client_id: str,
                  instance_id: str | None = None) -> Consumer:
    """A group member; ``instance_id``: static membership (confluent only; kafka-python 2.2 lacks it)."""
    if settings.client == "confluent":
        from workers.transport.confluent import ConfluentConsumer

        return ConfluentConsumer(settings, group_id, auto_offset_reset, client_id, instance_id)
    from workers.transport.kafka_python import KafkaPythonConsumer

    if instance_id:
        log.warning("group_instance_id %r ignored: kafka-python has no static membership (use KAFKA_CLIENT=confluent)",
                    instance_id)

    return KafkaPythonConsumer(settings, group_id, auto_offset_reset, client_id)


def make_producer(settings: KafkaSettings, client_id: str) -> Producer:
    if settings.client == "confluent":
        from workers.transport.confluent import ConfluentProducer

        return ConfluentProducer(settings, client_id)
    from workers.transport.kafka_python import KafkaPythonProducer

    return KafkaPythonProducer(settings, client_id)


class BrokerUnavailable(RuntimeError):
    """No broker answered within the start-up timeout."""


def make_reader(settings: KafkaSettings, topics: list[str], at_end: bool = False,
                client_id: str = "workers-reader") -> Reader:
    """A consumer outside any group that reads every partition of ``topics`` from the start (or, ``at_end``,
    from the current end): for tools, clients and tests, never for the engine."""
    consumer: Reader
    group = f"{client_id}-{uuid.uuid4().hex[:8]}"
    if settings.client == "confluent":
        from workers.transport.confluent import ConfluentConsumer

        consumer = ConfluentConsumer(settings, group, "earliest", client_id)
    else:
        from workers.transport.kafka_python import KafkaPythonConsumer

        consumer = KafkaPythonConsumer(settings, group, "earliest", client_id)
    consumer.assign_from_beginning(topics, at_end)
    return consumer


def make_partition_reader(settings: KafkaSettings, client_id: str) -> PartitionReader:
    """What a worker restores its state with (a changelog's partitions, read to their end)."""
    if settings.client == "confluent":
        from workers.transport.confluent import ConfluentPartitionReader

        return ConfluentPartitionReader(settings, client_id)
    from workers.transport.kafka_python import KafkaPythonPartitionReader

    return KafkaPythonPartitionReader(settings, client_id)


def _topic_admin(settings: KafkaSettings) -> TopicAdmin:
    if settings.client == "confluent":
        from workers.transport.confluent import ConfluentTopicAdmin

        return ConfluentTopicAdmin(settings)
    from workers.transport.kafka_python import KafkaPythonTopicAdmin

    return KafkaPythonTopicAdmin(settings)


def ensure_topics(
    settings: KafkaSettings,
    partitions: dict[str, int],
    timeout_s: float | None = None,
    waiting: Callable[[], None] = lambda: None,
    configs: Mapping[str, Mapping[str, str]] | None = None,
    partitioned_like: Mapping[str, str] | None = None,
) -> None:
    """Create the topics that do not exist yet (replication factor 1 on a one-broker cluster, else 3 capped),
    through the admin API of the configured client library (``KAFKA_CLIENT``), with their topic ``configs``.
    A topic in ``partitioned_like`` (topic -> another) is created with as many partitions as the other has
    (a changelog beside an input topic someone else created with more partitions than we would).

    Waits for the brokers first, retrying with backoff (1 s doubling to 15 s) and one log line per try,
    for ``timeout_s`` (default ``settings.startup_timeout_s``; 0 = forever); ``waiting`` is called
    between tries (the worker keeps its liveness probe green meanwhile).
    """
    timeout_s = settings.startup_timeout_s if timeout_s is None else timeout_s
    started = time.monotonic()
    delay, attempt = 1.0, 0
    while True:
        attempt += 1
        try:
            admin = _topic_admin(settings)
            break
        except ConnectionError:
            waited = time.monotonic() - started
            if timeout_s and waited + delay > timeout_s:
                raise BrokerUnavailable(
                    f"no Kafka broker reachable at {settings.bootstrap_servers} after {waited:.0f}s "
                    f"({attempt} tries; KAFKA_STARTUP_TIMEOUT_S={timeout_s:g})"
                ) from None
            log.warning("no Kafka broker reachable at %s (try %d, %.0fs so far); retrying in %.0fs",
                        settings.bootstrap_servers, attempt, waited, delay)
            waiting()
            time.sleep(delay)
            delay = min(15.0, delay * 2)
    if attempt > 1:
        log.info("broker reachable at %s after %d tries", settings.bootstrap_servers, attempt)
    try:
        partitions = dict(partitions)
        for topic, model in (partitioned_like or {}).items():
            partitions[topic] = admin.partition_count(model) or partitions[topic]
        created = admin.create_missing(partitions, configs)
        if created:
            log.info("created topics %s", ", ".join(created))
    finally:
        admin.close()
