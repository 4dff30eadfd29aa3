"""Micro-batcher: max batch size, max wait (Triton's dynamic batcher, two knobs).

:class:`AdaptiveBatchLimits` sets both knobs from measured batch times when the worker has a latency target.

With ``one_per_key`` a batch holds at most one item per key, for stateful models whose next
step for a key needs the state produced by its previous step (Triton's sequence batcher idea).
Items of a key that has to wait keep their order and go in a later batch.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import numpy as np


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


class AdaptiveBatchLimits:
    """Chooses the micro-batcher's size and wait from measured batch times, for a latency target (the idea of
    Triton's and MLServer's adaptive batching, with the two knobs set by the worker instead of by hand).

    A message can arrive just after a batch starts: it waits for that batch, then runs in the next. So a batch
    may take at most half the target: the largest size whose predicted time (a line fitted to the last
    ``window`` batches' (size, seconds), plus the 99th percentile of how far batches ran over the line) stays
    within ``target / 2``, capped by ``ceiling`` (the fixed ``max_batch_size``). What the largest batch leaves
    of the target, halved for the Kafka hops, is how long a message may wait for a fuller batch: at low load
    that buys larger batches (less CPU per message); under load batches fill before the wait is up."""

    def __init__(self, target_s: float, ceiling: int, window: int = 256, refit_every: int = 16) -> None:
        if target_s <= 0:
            raise ValueError("the latency target must be positive")
        self.target_s = target_s
        self.ceiling = ceiling
        self.refit_every = refit_every
        self._sizes: deque[int] = deque(maxlen=window)
        self._seconds: deque[float] = deque(maxlen=window)
        self._since_fit = 0
        self.fixed_s, self.per_item_s, self.spread_s = 0.0, 0.0, 0.0
        self.max_size = ceiling
        self.max_wait_s = 0.0
        """No wait until batches were measured: greedy, as the default."""

    def observe(self, size: int, seconds: float) -> bool:
        """One batch's size and processing time; True when the limits changed (refitted every ``refit_every``)."""
        self._sizes.append(size)
        self._seconds.append(seconds)
        self._since_fit += 1
        if self._since_fit < self.refit_every:
            return False
        self._since_fit = 0
        before = (self.max_size, self.max_wait_s)
        self._refit()
        return (self.max_size, self.max_wait_s) != before

    def predicted_s(self, size: int) -> float:
        """A batch of ``size``: the time it takes at the 99th percentile of the batches measured."""
        return self.fixed_s + self.per_item_s * size + self.spread_s

    def _refit(self) -> None:
        sizes = np.asarray(self._sizes, dtype=np.float64)
        seconds = np.asarray(self._seconds, dtype=np.float64)
        if np.ptp(sizes) > 0:
            per_item, fixed = np.polyfit(sizes, seconds, 1)
            self.per_item_s, self.fixed_s = max(float(per_item), 0.0), max(float(fixed), 0.0)
        else:  # one size only (e.g. always full under load): keep the fixed cost, refit the slope
            self.per_item_s = max(float(seconds.mean()) - self.fixed_s, 0.0) / sizes[0]
        over = seconds - (self.fixed_s + self.per_item_s * sizes)
        self.spread_s = max(float(np.quantile(over, 0.99)), 0.0)
        budget = self.target_s / 2 - self.fixed_s - self.spread_s
        if self.per_item_s > 0:
            size = int(budget // self.per_item_s)
        else:
            size = self.ceiling if budget > 0 else 1
        self.max_size = min(self.ceiling, max(1, size))
        self.max_wait_s = max(0.0, (self.target_s - 2 * self.predicted_s(self.max_size)) / 2)
