"""The transport's ceiling: consume and produce through the worker's own Kafka adapters, with its commit
rule, and nothing else (no decode, no state, no model). ``workers bench`` runs it as the ``transport``
system beside ours, so a report shows what the broker and client cost apart from what the worker adds::

    python -m workers.devtools.bench.transport --input T --output T --group G

Kafka and engine settings come from the environment as the worker's do (``KAFKA_*``; ``WORKERS_POLL_MAX_RECORDS``,
``WORKERS_COMMIT_INTERVAL_S``). Each input record is answered by one record with the same key and value and the
``source.partition``/``source.offset`` headers the benchmark times it by; an offset is committed once its
answer is acknowledged (the contiguous prefix, as the engine commits).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable

from workers.engine.offsets import OffsetTracker
from workers.settings import EngineSettings, KafkaSettings
from workers.transport.factory import make_consumer, make_producer
from workers.transport.records import OutgoingRecord, TopicPartition


class _Forget:
    """Rebalance listener: a revoked partition's unanswered offsets are the next owner's."""

    def __init__(self, tracker: OffsetTracker) -> None:
        self.tracker = tracker

    def on_partitions_revoked(self, partitions: set[TopicPartition]) -> None:
        self.tracker.forget(partitions)

    def on_partitions_assigned(self, partitions: set[TopicPartition]) -> None:
        pass


def echo(kafka: KafkaSettings, engine: EngineSettings, input_topic: str, output_topic: str, group: str,
         running: list[bool]) -> int:
    """Answer every record of ``input_topic`` on ``output_topic`` until ``running[0]`` turns false; the
    number of records answered."""
    tracker, failed = OffsetTracker(), []
    consumer = make_consumer(kafka, group, "earliest", "bench-transport")
    producer = make_producer(kafka, "bench-transport")
    consumer.subscribe([input_topic], _Forget(tracker))

    def acknowledged(tp: TopicPartition, offset: int) -> Callable[[Exception | None, float], None]:
        def delivered(error: Exception | None, _acked_at: float) -> None:
            if error is None:
                tracker.done(tp, offset)
            else:
                failed.append(error)
        return delivered

    answered, last_commit = 0, time.monotonic()
    try:
        while running[0]:
            for record in consumer.poll(0.1, engine.poll_max_records):
                tracker.track(record.tp, record.offset)
                headers = [("source.partition", str(record.partition).encode()),
                           ("source.offset", str(record.offset).encode())]
                producer.produce(OutgoingRecord(output_topic, record.value or b"", record.key, headers),
                                 acknowledged(record.tp, record.offset))
                answered += 1
            producer.poll()
            if failed:  # as the engine does: stop without committing past an answer the broker refused
                raise RuntimeError(f"the broker refused an answer: {failed[0]}")
            if time.monotonic() - last_commit >= engine.commit_interval_s:
                last_commit = time.monotonic()
                consumer.commit(tracker.take_committable())
        producer.flush(10)
        consumer.commit(tracker.take_committable())
    finally:
        producer.close()
        consumer.close()
    return answered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--group", required=True)
    args = parser.parse_args(argv)
    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    print("ready", flush=True)
    echo(KafkaSettings(), EngineSettings(), args.input, args.output, args.group, running)
    return 0


if __name__ == "__main__":
    sys.exit(main())
