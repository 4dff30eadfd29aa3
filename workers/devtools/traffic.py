"""What a workload gives ``workers demo``: a stream of sample records and how to show each result.

A workload's ``demo`` reference (:class:`workers.plugin.WorkloadSpec`) names a callable ``(rate) ->
DemoTraffic``; every ``MALFORMED_EVERY``-th record it makes should be malformed, so the demo shows the
dead-letter topic at work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workers.topics import dlq_topic
from workers.transport.records import OutgoingRecord

MALFORMED_EVERY = 25


@dataclass
class DemoTraffic:
    """One worker in the demo: its traffic and how its results are shown."""

    worker: str
    title: str
    input_topic: str
    output_topic: str
    make: Callable[[int], tuple[OutgoingRecord, str | None]]  # i -> (record, expected id or None if malformed)
    show: Callable[[dict[str, Any], dict[str, str]], tuple[str, bool]]  # result, expectations -> (line or "", correct)
    expected: dict[str, str] = field(default_factory=dict)
    results: int = 0
    correct: int = 0
    dead: int = 0
    latencies: list[float] = field(default_factory=list)
    metrics_port: int = 0
    answers: Callable[[dict[str, Any]], int] = lambda result: 1
    """How many inputs a result answers (a result that comes beside another answer counts 0)."""
    summary: Callable[[DemoTraffic], str] | None = None
    """Extra words for the closing summary line (an accuracy against the truth the traffic knows)."""

    @property
    def dlq_topic(self) -> str:
        return dlq_topic(self.input_topic)
