from workers.transport.records import Record, TopicPartition


def test_a_records_partition_is_one_shared_topic_partition() -> None:
    first = Record("clicks.events", 3, 10, None, b"{}")
    second = Record("clicks.events", 3, 11, None, b"{}")
    assert first.tp == TopicPartition("clicks.events", 3)
    assert first.tp is second.tp  # built once, not once a message
    assert Record("clicks.events", 4, 10, None, b"{}").tp == TopicPartition("clicks.events", 4)
    assert {first.tp: 1}[TopicPartition("clicks.events", 3)] == 1  # the same key as a fresh tuple
