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


# -- adaptive limits ---------------------------------------------------------------------------

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from workers.engine.batcher import AdaptiveBatchLimits  # noqa: E402


def feed(limits: AdaptiveBatchLimits, sizes: list[int], cost, noise: float = 0.0, seed: int = 0) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    for size in sizes:
        limits.observe(size, cost(size) + (rng.exponential(noise) if noise else 0.0))


def test_limits_start_as_the_fixed_knobs_greedy_up_to_the_ceiling() -> None:
    limits = AdaptiveBatchLimits(0.040, ceiling=64)
    assert (limits.max_size, limits.max_wait_s) == (64, 0.0)


def test_a_costly_model_gets_batches_that_take_half_the_target_and_no_wait() -> None:
    limits = AdaptiveBatchLimits(0.040, ceiling=64)
    feed(limits, [1, 2, 4, 8, 16, 32, 64] * 10, lambda n: 0.001 + 0.0004 * n)  # 1 ms + 0.4 ms an item
    assert limits.fixed_s == pytest.approx(0.001, abs=1e-6) and limits.per_item_s == pytest.approx(0.0004, abs=1e-7)
    assert limits.max_size == 47  # (20 ms - 1 ms) / 0.4 ms = 47.5
    assert limits.predicted_s(limits.max_size) <= 0.020
    assert limits.max_wait_s == pytest.approx(0.0002, abs=1e-6)  # (40 - 2 x 19.8) ms / 2: near nothing left


def test_a_cheap_model_keeps_the_ceiling_and_spends_the_rest_of_the_target_waiting() -> None:
    limits = AdaptiveBatchLimits(0.020, ceiling=64)
    feed(limits, [1, 3, 9, 27, 64] * 20, lambda n: 0.0002 + 0.00001 * n)
    assert limits.max_size == 64
    assert limits.max_wait_s == pytest.approx((0.020 - 2 * (0.0002 + 0.00064)) / 2, rel=1e-3)


def test_slow_outliers_shrink_the_batch_and_a_target_nothing_meets_still_runs_one_at_a_time() -> None:
    steady = AdaptiveBatchLimits(0.040, ceiling=64)
    noisy = AdaptiveBatchLimits(0.040, ceiling=64)
    sizes = [1, 2, 4, 8, 16, 32, 64] * 30
    feed(steady, sizes, lambda n: 0.001 + 0.0002 * n)
    feed(noisy, sizes, lambda n: 0.001 + 0.0002 * n, noise=0.002)
    assert noisy.spread_s > 0.004 and noisy.max_size < steady.max_size
    hopeless = AdaptiveBatchLimits(0.001, ceiling=64)
    feed(hopeless, sizes, lambda n: 0.005 + 0.001 * n)
    assert (hopeless.max_size, hopeless.max_wait_s) == (1, 0.0)


def test_full_batches_only_still_follow_a_model_that_got_slower() -> None:
    limits = AdaptiveBatchLimits(0.040, ceiling=64, window=32)
    feed(limits, [1, 8, 64] * 20, lambda n: 0.001 + 0.0002 * n)
    assert limits.max_size == 64
    feed(limits, [64] * 64, lambda n: 0.001 + 0.0005 * n)  # slower now, and every batch full
    assert limits.predicted_s(64) == pytest.approx(0.033, rel=1e-6)  # the slope refitted to what full batches take
    assert limits.max_size < 64 and limits.predicted_s(limits.max_size) <= 0.020 < limits.predicted_s(limits.max_size + 1)
