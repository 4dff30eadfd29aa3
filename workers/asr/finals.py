"""The finals' beam search in a separate process, off the engine's batch loop.

The search is pure Python and runs once per segment over all its frames (tens of milliseconds for a
sentence). Run in the batch loop it delayed every partial of every stream in that batch; run in a
thread it would still hold the GIL. Here it runs in ``processes`` child processes, each holding its own
copy of the language models (loaded once, at start), and the worker sends a final when its search is
done (:class:`workers.engine.handler.Deferred`).
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workers.asr.lm import LanguageModels, Phrases, Searched, SearchSettings
from workers.asr.text import ALPHABET

log = logging.getLogger(__name__)

_child_lm: LanguageModels | None = None


def _start_child(model_dir: str, parent: int, nice: int = 0) -> None:
    """Pool initializer: lower the priority by ``nice``, load the LMs, and leave when the worker is gone (a
    worker killed with -9 never shuts its pool down, and an orphaned child would live on)."""
    global _child_lm
    if nice:
        os.nice(nice)
    _child_lm = LanguageModels.load(Path(model_dir))

    def exit_with_parent() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=exit_with_parent, name="exit-with-parent", daemon=True).start()


@dataclass(frozen=True, slots=True)
class SearchDone:
    """What one submitted search found, how long it took, and the beam width it ran with."""

    found: list[Searched]
    seconds: float
    beam: int


def _search_in_child(lattices: list[np.ndarray], phrases: list[Phrases | None], settings: SearchSettings) -> SearchDone:
    assert _child_lm is not None, "the pool's initializer loads the language models"
    started = time.perf_counter()
    found = [_child_lm.search(lp, settings, ph) for lp, ph in zip(lattices, phrases, strict=True)]
    return SearchDone(found, time.perf_counter() - started, settings.beam)


class FinalsPool:
    """Child processes that run :func:`workers.asr.lm.beam_search` with the model's language models.

    When ``backlog`` searches are already waiting or running, a new one runs with ``busy_beam`` instead:
    under a burst of finals a narrower search (less accurate, ~2.5x cheaper at 8 than at 32) keeps the
    finals' delay bounded instead of letting the queue grow."""

    def __init__(self, model_dir: Path, processes: int, settings: SearchSettings, busy_beam: int | None = None,
                 backlog: int = 4, nice: int = 0) -> None:
        self.model_dir, self.processes, self.settings, self.backlog = model_dir, processes, settings, backlog
        self.nice = nice
        self.busy_settings = dataclasses.replace(settings, beam=min(busy_beam or settings.beam, settings.beam))
        self._waiting = 0
        self._lock = threading.Lock()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        # spawn, not fork: the parent runs ONNX Runtime and client threads, which a fork would copy mid-flight
        return ProcessPoolExecutor(self.processes, multiprocessing.get_context("spawn"),
                                   initializer=_start_child, initargs=(str(self.model_dir), os.getpid(), self.nice))

    def warmup(self) -> None:
        """Start the children and load their LMs now, not on the first final."""
        lattice = np.full((4, len(ALPHABET) + 1), -10.0, np.float16)
        lattice[:, 0] = 0.0
        for future in [self.search([lattice]) for _ in range(self.processes)]:
            future.result()

    def search(self, lattices: list[np.ndarray], phrases: list[Phrases | None] | None = None) -> Future[SearchDone]:
        """The beam search of each [frames, vocab] log-probability array, with its stream's phrase list (if
        any). One caller (the batch loop)."""
        phrases = phrases or [None] * len(lattices)
        with self._lock:
            settings = self.busy_settings if self._waiting >= self.backlog else self.settings
        try:
            future = self._pool.submit(_search_in_child, lattices, phrases, settings)
        except BrokenProcessPool:  # a child died (killed, out of memory): start afresh, once
            log.warning("the finals' beam search pool broke; starting it again")
            self._pool = self._start()
            future = self._pool.submit(_search_in_child, lattices, phrases, settings)
        with self._lock:
            self._waiting += 1
        future.add_done_callback(self._done)  # runs at once if the search is done already
        return future

    def _done(self, _: Future[SearchDone]) -> None:
        with self._lock:
            self._waiting -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
