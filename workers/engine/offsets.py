"""Which offsets may be committed: only those whose every predecessor in the partition is done.

"Done" means its results (or its dead-letter record) were acknowledged by the broker. Committing the
contiguous prefix only is what makes a crash lose nothing: anything after the first unfinished
offset is re-read on restart (Faust's "acked, contiguous offsets" rule).
"""

from __future__ import annotations

from collections import deque

from workers.transport.records import TopicPartition


class OffsetTracker:
    def __init__(self) -> None:
        # Per partition, offsets tracked and not yet committable -> done flag, and the same offsets in
        # consumption order (a deque: the done prefix leaves from its front in O(1) an offset).
        self._pending: dict[TopicPartition, dict[int, bool]] = {}
        self._order: dict[TopicPartition, deque[int]] = {}
        # Per partition, the next offset to commit that has not been committed yet.
        self._uncommitted: dict[TopicPartition, int] = {}
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Messages consumed whose results are not acknowledged yet."""
        return self._in_flight

    def track(self, tp: TopicPartition, offset: int) -> None:
        pending = self._pending.get(tp)
        if pending is None:
            pending = self._pending[tp] = {}
            self._order[tp] = deque()
        done = pending.get(offset)
        if done is False:
            return  # tracked already and unfinished: one offset counts once
        pending[offset] = False
        if done is None:
            self._order[tp].append(offset)
        self._in_flight += 1

    def done(self, tp: TopicPartition, offset: int) -> None:
        pending = self._pending.get(tp)
        if pending is None or pending.get(offset) is not False:
            return  # partition revoked meanwhile, or already done
        pending[offset] = True
        self._in_flight -= 1
        order = self._order[tp]
        if order[0] != offset:
            return  # an earlier offset is still unfinished
        while order and pending[order[0]]:
            first = order.popleft()
            del pending[first]
        self._uncommitted[tp] = first + 1

    def take_committable(self) -> dict[TopicPartition, int]:
        """Offsets to commit now (next offset to read, per partition); each is handed out once."""
        ready, self._uncommitted = self._uncommitted, {}
        return ready

    def restore(self, offsets: dict[TopicPartition, int]) -> None:
        """Give back offsets whose commit failed, unless a newer one is already waiting."""
        for tp, offset in offsets.items():
            if tp in self._pending:
                self._uncommitted[tp] = max(offset, self._uncommitted.get(tp, offset))

    def forget(self, partitions: set[TopicPartition]) -> None:
        """Drop revoked partitions; their unfinished offsets will be re-read by the next owner."""
        for tp in partitions:
            offsets = self._pending.pop(tp, None)
            self._order.pop(tp, None)
            if offsets:
                self._in_flight -= sum(1 for d in offsets.values() if not d)
            self._uncommitted.pop(tp, None)
