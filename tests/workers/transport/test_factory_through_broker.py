"""Topic creation goes through the configured client's own admin API, and tools read with their own reader."""

from __future__ import annotations

import confluent_kafka as ck
import pytest

from workers.client import send
from workers.settings import KafkaSettings
from workers.topics import Topics
from workers.transport.factory import ensure_topics, make_producer, make_reader
from workers.transport.records import OutgoingRecord

pytestmark = pytest.mark.integration


def partition_counts(kafka: KafkaSettings, names: list[str]) -> dict[str, int]:
    metadata = ck.Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": "inspect"}).list_topics(timeout=10)
    return {name: len(metadata.topics[name].partitions) for name in names if name in metadata.topics}


def test_ensure_topics_creates_what_is_missing_and_leaves_the_rest(kafka: KafkaSettings, topics: dict[str, str]) -> None:
    wanted = Topics.of(topics["input"], topics["output"], partitions=3).to_create()
    ensure_topics(kafka, wanted)
    ensure_topics(kafka, wanted | {topics["output"]: 5})  # exists already: left as it is, no error
    assert partition_counts(kafka, list(wanted)) == {topics["input"]: 3, topics["output"]: 3, topics["dlq"]: 1}


def test_the_reader_reads_every_partition_from_the_start_or_from_now(kafka: KafkaSettings, topics: dict[str, str]) -> None:
    ensure_topics(kafka, {topics["input"]: 3})
    for i in range(9):  # one batch each: the embedded broker reports a partition's end per batch, not per record
        send(kafka, [OutgoingRecord(topics["input"], f"old-{i}".encode(), f"k{i}".encode())])
    from_now = make_reader(kafka, [topics["input"]], at_end=True)
    from_start = make_reader(kafka, [topics["input"]])
    try:
        send(kafka, [OutgoingRecord(topics["input"], b"new", b"k0")])
        seen: dict[str, list[bytes]] = {"start": [], "now": []}
        for _ in range(100):
            seen["start"] += [r.value for r in from_start.poll(0.1, 100)]
            seen["now"] += [r.value for r in from_now.poll(0.1, 100)]
            if len(seen["start"]) >= 10 and seen["now"]:
                break
        assert sorted(seen["start"]) == sorted([f"old-{i}".encode() for i in range(9)] + [b"new"])
        assert seen["now"] == [b"new"]
    finally:
        from_now.close()
        from_start.close()


def test_a_group_of_records_goes_out_in_order_with_one_acknowledgement(kafka: KafkaSettings, topics: dict[str, str]) -> None:
    ensure_topics(kafka, {topics["output"]: 1})
    producer = make_producer(kafka, "group-test")
    acks: list[Exception | None] = []
    records = [OutgoingRecord(topics["output"], f"v{i}".encode(), b"k", [("n", str(i).encode())]) for i in range(50)]
    producer.produce_all(records, lambda error, _at: acks.append(error))
    assert producer.flush(30)
    producer.close()
    assert acks == [None]
    reader = make_reader(kafka, [topics["output"]])
    try:
        seen: list[bytes] = []
        for _ in range(100):
            seen += [r.value for r in reader.poll(0.1, 100)]
            if len(seen) >= 50:
                break
        assert seen == [f"v{i}".encode() for i in range(50)]
    finally:
        reader.close()
