"""Python's cyclic garbage collector tuned for a long-running worker, and every collection timed."""

from __future__ import annotations

import gc
import time
from typing import Any

from workers.metrics import GC_PAUSE


def tune_garbage_collection(young_threshold: int, worker: str) -> tuple[int, int, int]:
    """Collect cyclic garbage less often, and never again scan what start-up loaded; time every collection.

    A worker's hot path makes few reference cycles (its objects die by reference counting), but Python collects
    the young generation every 700 net allocations and, every hundred of those, may scan everything tracked:
    the libraries, the model's Python side, every key's state. A worker with a cheap model spent 3-8 us a message of
    60-90 in collections, and each full one stopped its loop for about 40 ms (docs/benchmarks.md). Called once the model
    is loaded and warm: ``gc.freeze`` moves what exists then out of every later collection. 0 keeps Python's
    thresholds (the pauses are still timed, in ``workers_gc_pause_seconds``). Returns the thresholds before, for
    :func:`untune_garbage_collection`."""
    _pauses[:] = [GC_PAUSE.labels(worker=worker, generation=str(g)) for g in range(3)]
    if _time_collection not in gc.callbacks:
        gc.callbacks.append(_time_collection)
    before = gc.get_threshold()
    if young_threshold > 0:
        gc.collect()
        gc.freeze()
        gc.set_threshold(young_threshold, *before[1:])
    return before


def untune_garbage_collection(before: tuple[int, int, int]) -> None:
    """Python's collector as it was before :func:`tune_garbage_collection` (a tool that runs a worker's loop inside a
    longer process, such as the drain benchmark under the tests); collections stay timed."""
    gc.unfreeze()
    gc.set_threshold(*before)


_collection_started = 0.0
_pauses: list[Any] = []
"""The process's worker's pause series, one per generation (one worker a process)."""


def _time_collection(phase: str, info: dict[str, int]) -> None:
    global _collection_started
    if phase == "start":
        _collection_started = time.perf_counter()
    elif _pauses:
        _pauses[info["generation"]].observe(time.perf_counter() - _collection_started)


def collect_replaced() -> None:
    """After a model version was replaced: what was frozen (the old version among it) rejoins the collector for
    one full collection, which frees the old version's reference cycles, and what is still live is frozen again.
    Without it an old version held in a cycle would never be freed. A no-op when nothing is frozen."""
    if gc.get_freeze_count():
        gc.unfreeze()
        gc.collect()
        gc.freeze()
