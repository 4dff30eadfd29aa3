"""The streaming engine shared by every worker: offsets, micro-batching, per-key state, DLQ, the loop."""

from workers.engine.engine import StreamEngine
from workers.engine.handler import Handler, InvalidMessage, Outcome, Pending, Result

__all__ = ["Handler", "InvalidMessage", "Outcome", "Pending", "Result", "StreamEngine"]
