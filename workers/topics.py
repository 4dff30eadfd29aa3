"""The one place that names a worker's topics: input, output and the dead-letter topic beside the input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workers.settings import EngineSettings

DLQ_SUFFIX = ".dlq"


def dlq_topic(input_topic: str) -> str:
    """The dead-letter topic of ``input_topic`` when no setting overrides it."""
    return f"{input_topic}{DLQ_SUFFIX}"


@dataclass(frozen=True, slots=True)
class Topics:
    """A worker's three topics and the partition count of its input and output (the DLQ has one)."""

    input: str
    output: str
    dlq: str
    partitions: int = 4

    @classmethod
    def of(cls, input_topic: str, output_topic: str, partitions: int = 4,
           engine: EngineSettings | None = None) -> Topics:
        """The declared topics, each overridden by ``WORKERS_INPUT_TOPIC``/``_OUTPUT_TOPIC``/``_DLQ_TOPIC``."""
        chosen = (engine.input_topic if engine else None) or input_topic
        output = (engine.output_topic if engine else None) or output_topic
        dlq = (engine.dlq_topic if engine else None) or dlq_topic(chosen)
        return cls(chosen, output, dlq, partitions)

    @classmethod
    def of_handler(cls, handler: type | object, engine: EngineSettings | None = None) -> Topics:
        """The topics a handler (class or instance) declares, with the engine's overrides."""
        return cls.of(handler.input_topic, handler.output_topic, handler.partitions, engine)  # type: ignore[attr-defined]

    def to_create(self) -> dict[str, int]:
        """Topic -> partitions, for :func:`workers.transport.factory.ensure_topics`."""
        return {self.input: self.partitions, self.output: self.partitions, self.dlq: 1}
