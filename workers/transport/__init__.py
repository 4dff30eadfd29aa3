"""Kafka transport: a small client-neutral interface and its kafka-python / confluent-kafka adapters.

Nothing in this package knows about models; the engine talks to Kafka only through
:class:`~workers.transport.base.Consumer` and :class:`~workers.transport.base.Producer`.
"""

from workers.transport.base import Consumer, DeliveryCallback, Producer, RebalanceListener
from workers.transport.records import OutgoingRecord, Record, TopicPartition

__all__ = [
    "Consumer",
    "DeliveryCallback",
    "OutgoingRecord",
    "Producer",
    "RebalanceListener",
    "Record",
    "TopicPartition",
]
