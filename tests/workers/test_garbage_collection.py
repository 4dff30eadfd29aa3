"""The worker's garbage-collector settings and the timing of every collection."""

from __future__ import annotations

import gc
import weakref

from prometheus_client import REGISTRY

from workers.garbage_collection import _time_collection, collect_replaced, tune_garbage_collection, untune_garbage_collection


def gc_pause_count(generation: int) -> float:
    return REGISTRY.get_sample_value("workers_gc_pause_seconds_count", {"worker": "test", "generation": str(generation)}) or 0.0


def test_a_worker_collects_garbage_less_often_without_rescanning_start_up_and_times_each_collection() -> None:
    thresholds = gc.get_threshold()
    try:
        tune_garbage_collection(50_000, "test")
        assert gc.get_threshold() == (50_000, *thresholds[1:])
        assert gc.get_freeze_count() > 0  # what was loaded before the loop is out of later collections
        before = gc_pause_count(2)
        gc.collect()
        assert gc_pause_count(2) == before + 1
        tune_garbage_collection(50_000, "test")  # again (a second drain in one process): still one timer
        before = gc_pause_count(2)
        gc.collect()
        assert gc_pause_count(2) == before + 1
        untune_garbage_collection(thresholds)
        assert gc.get_threshold() == thresholds and gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        gc.callbacks[:] = [cb for cb in gc.callbacks if cb is not _time_collection]


def test_a_young_threshold_of_0_keeps_pythons_collector_as_it_is() -> None:
    thresholds = gc.get_threshold()
    try:
        tune_garbage_collection(0, "test")
        assert gc.get_threshold() == thresholds and gc.get_freeze_count() == 0
    finally:
        gc.callbacks[:] = [cb for cb in gc.callbacks if cb is not _time_collection]


class Cyclic:
    """An object in a reference cycle, as a replaced model version may be: only the collector frees it."""

    def __init__(self) -> None:
        self.me = self


def test_a_replaced_version_frozen_at_start_up_is_freed() -> None:
    gc.collect()
    old = Cyclic()
    gone = weakref.ref(old)
    gc.freeze()
    try:
        del old
        gc.collect()
        assert gone() is not None  # frozen: no collection looks at it
        collect_replaced()
        assert gone() is None
        assert gc.get_freeze_count() > 0  # what is live is frozen again
    finally:
        gc.unfreeze()
