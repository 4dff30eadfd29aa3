from dataclasses import dataclass

from workers.engine.batcher import MicroBatcher


@dataclass
class Item:
    key: str
    enqueued_at: float
    n: int = 0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_batch_is_due_when_full_or_when_the_oldest_waited_long_enough() -> None:
    clock = Clock()
    batcher: MicroBatcher[Item] = MicroBatcher(3, 0.010, clock=clock)
    assert batcher.seconds_until_due() is None
    batcher.add(Item("a", clock.now))
    assert not batcher.due()
    assert abs(batcher.seconds_until_due() - 0.010) < 1e-9  # type: ignore[operator]
    clock.now += 0.011
    assert batcher.due()
    batcher.add(Item("b", clock.now))
    batcher.add(Item("c", clock.now))
    assert [i.key for i in batcher.take()] == ["a", "b", "c"]
    assert len(batcher) == 0


def test_take_respects_max_size_and_order() -> None:
    batcher: MicroBatcher[Item] = MicroBatcher(2, 1.0)
    for n in range(5):
        batcher.add(Item("k", 0.0, n))
    assert [i.n for i in batcher.take()] == [0, 1]
    assert [i.n for i in batcher.take()] == [2, 3]


def test_one_per_key_defers_a_keys_later_items_in_order() -> None:
    batcher: MicroBatcher[Item] = MicroBatcher(10, 0.0, one_per_key=True)
    for key, n in [("a", 1), ("a", 2), ("b", 1), ("a", 3), ("c", 1), ("b", 2)]:
        batcher.add(Item(key, 0.0, n))
    assert [(i.key, i.n) for i in batcher.take()] == [("a", 1), ("b", 1), ("c", 1)]
    assert [(i.key, i.n) for i in batcher.take()] == [("a", 2), ("b", 2)]
    assert [(i.key, i.n) for i in batcher.take()] == [("a", 3)]
