"""Micro-batcher: max batch size, max wait (Triton's dynamic batcher, two knobs).

With ``one_per_key`` a batch holds at most one item per key, for stateful models whose next
step for a key needs the state produced by its previous step (Triton's sequence batcher idea).
Items of a key that has to wait keep their order and go in a later batch.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar


class Batchable(Protocol):
    @property
    def key(self) -> str: ...

    @property
    def enqueued_at(self) -> float: ...


T = TypeVar("T", bound=Batchable)


class MicroBatcher(Generic[T]):
    def __init__(
        self,
        max_size: int,
        max_wait_s: float,
        one_per_key: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self.one_per_key = one_per_key
        self._clock = clock
        self._queue: deque[T] = deque()

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, item: T) -> None:
        self._queue.append(item)

    def seconds_until_due(self) -> float | None:
        """Time until the oldest item's wait is up (0 when a batch is due now); None when empty."""
        if not self._queue:
            return None
        if len(self._queue) >= self.max_size:
            return 0.0
        return max(0.0, self._queue[0].enqueued_at + self.max_wait_s - self._clock())

    def due(self) -> bool:
        return self.seconds_until_due() == 0.0

    def take(self) -> list[T]:
        """The next batch in arrival order (may be empty only when the queue is)."""
        if not self.one_per_key:
            n = min(self.max_size, len(self._queue))
            return [self._queue.popleft() for _ in range(n)]
        batch: list[T] = []
        keys: set[str] = set()
        held: deque[T] = deque()
        while self._queue and len(batch) < self.max_size:
            item = self._queue.popleft()
            if item.key in keys:
                held.append(item)
            else:
                keys.add(item.key)
                batch.append(item)
        held.extend(self._queue)
        self._queue = held
        return batch
