"""Dead-letter records: the original bytes, untouched, with where they came from and why in headers."""

from __future__ import annotations

import time

from workers.transport.records import OutgoingRecord, Record

REASON = "dlq.reason"
DETAIL = "dlq.detail"


def dead_letter(record: Record, topic: str, worker: str, code: str, detail: str) -> OutgoingRecord:
    headers = list(record.headers) + [
        (REASON, code.encode()),
        (DETAIL, detail[:2000].encode("utf-8", "replace")),
        ("dlq.source.topic", record.topic.encode()),
        ("dlq.source.partition", str(record.partition).encode()),
        ("dlq.source.offset", str(record.offset).encode()),
        ("dlq.worker", worker.encode()),
        ("dlq.time_ms", str(int(time.time() * 1000)).encode()),
    ]
    return OutgoingRecord(topic=topic, value=record.value or b"", key=record.key, headers=headers)
