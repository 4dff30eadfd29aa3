"""The client-neutral producer helpers: one callback for a group of records."""

from __future__ import annotations

import confluent_kafka as ck

from tests.fakes import FakeProducer
from workers.transport.base import AllDelivered, produce_each
from workers.transport.confluent import _Group
from workers.transport.records import OutgoingRecord


def test_a_group_is_reported_once_when_its_last_record_is_acknowledged() -> None:
    calls: list[tuple[Exception | None, float]] = []
    group = AllDelivered(3, lambda error, at: calls.append((error, at)))
    group(None, 1.0)
    group(None, 2.0)
    assert calls == []
    group(None, 3.0)
    assert calls == [(None, 3.0)]


def test_a_group_is_reported_once_at_its_first_refusal_and_later_acks_change_nothing() -> None:
    calls: list[tuple[Exception | None, float]] = []
    group = AllDelivered(3, lambda error, at: calls.append((error, at)))
    refused = RuntimeError("no")
    group(None, 1.0)
    group(refused, 2.0)
    group(None, 3.0)
    assert calls == [(refused, 2.0)]


def test_produce_each_sends_in_order_and_reports_an_empty_group_at_once() -> None:
    producer = FakeProducer(hold=True)
    calls: list[Exception | None] = []
    produce_each(producer, [], lambda error, _at: calls.append(error))
    assert calls == [None]
    records = [OutgoingRecord("t", str(i).encode()) for i in range(4)]
    produce_each(producer, records, lambda error, _at: calls.append(error))
    assert [r for r, _ in producer.unacked] == records and calls == [None]
    producer.release()
    assert calls == [None, None]


class _Message:
    def __init__(self, latency: float | None) -> None:
        self._latency = latency

    def latency(self) -> float | None:
        return self._latency


def test_librdkafkas_group_reports_the_last_acknowledgement_time_or_the_first_error() -> None:
    calls: list[tuple[Exception | None, float]] = []
    group = _Group(2, lambda error, at: calls.append((error, at)), sent_at=100.0)
    group.delivered(None, _Message(0.004))
    group.delivered(None, _Message(0.007))
    assert calls == [(None, 100.007)]

    calls.clear()
    failing = _Group(2, lambda error, at: calls.append((error, at)), sent_at=100.0)
    failing.delivered(ck.KafkaError(ck.KafkaError._MSG_TIMED_OUT), _Message(None))
    failing.delivered(None, _Message(0.001))
    assert len(calls) == 1 and isinstance(calls[0][0], ck.KafkaException)
