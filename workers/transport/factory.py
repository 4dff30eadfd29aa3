"""Builds consumers, producers and topics for the configured client library."""

from __future__ import annotations

import logging
import time

from workers.settings import KafkaSettings
from workers.transport.base import Consumer, Producer

log = logging.getLogger(__name__)


def make_consumer(settings: KafkaSettings, group_id: str, auto_offset_reset: str, client_id: str) -> Consumer:
    if settings.client == "confluent":
        from workers.transport.confluent import ConfluentConsumer

        return ConfluentConsumer(settings, group_id, auto_offset_reset, client_id)
    from workers.transport.kafka_python import KafkaPythonConsumer

    return KafkaPythonConsumer(settings, group_id, auto_offset_reset, client_id)


def make_producer(settings: KafkaSettings, client_id: str) -> Producer:
    if settings.client == "confluent":
        from workers.transport.confluent import ConfluentProducer

        return ConfluentProducer(settings, client_id)
    from workers.transport.kafka_python import KafkaPythonProducer

    return KafkaPythonProducer(settings, client_id)


def ensure_topics(settings: KafkaSettings, partitions: dict[str, int], timeout_s: float = 30.0) -> None:
    """Create the topics that do not exist yet (replication factor 1 on a one-broker cluster, else 3 capped)."""
    import kafka.errors
    from kafka.admin import KafkaAdminClient, NewTopic

    from workers.transport.kafka_python import client_config

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin = KafkaAdminClient(client_id="workers-admin", **client_config(settings))
            break
        except kafka.errors.NoBrokersAvailable:
            if time.monotonic() > deadline:
                raise
            log.warning("no broker at %s yet; retrying", settings.bootstrap_servers)
            time.sleep(1.0)
    try:
        existing = set(admin.list_topics())
        brokers = len(admin.describe_cluster().get("brokers", [])) or 1
        missing = [
            NewTopic(name, n, min(3, brokers)) for name, n in partitions.items() if name not in existing
        ]
        if missing:
            try:
                admin.create_topics(missing)
            except kafka.errors.TopicAlreadyExistsError:
                pass  # another worker won the race
            log.info("created topics %s", ", ".join(t.name for t in missing))
    finally:
        admin.close()
