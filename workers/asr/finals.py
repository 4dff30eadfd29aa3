"""The finals' second pass in a separate process, off the engine's batch loop: the attention decoder over
a final's audio (``workers.asr.whisper``), or the beam search over its frames.

Either runs once per segment over all of it (tens to hundreds of milliseconds for a sentence). Run in the batch loop it delayed every partial of every stream in that batch; run in a
thread it would still hold the GIL. Here it runs in ``processes`` child processes, each holding its own
copy of the models (loaded once, at start), and the worker sends a final when its search is
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

from workers.asr.lm import LanguageModels, Searched, SearchSettings
from workers.asr.recognizer import Owed, second_pass
from workers.asr.text import ALPHABET
from workers.asr.whisper import Decoded, Whisper
from workers.settings import OnnxSettings

log = logging.getLogger(__name__)

_child_lm: LanguageModels | None = None
_child_whisper: Whisper | None = None


def _start_child(model_dir: str, parent: int, nice: int = 0, whisper: bool = True) -> None:
    """Pool initializer: lower the priority by ``nice``, load the LMs and the attention decoder, and leave
    when the worker is gone (a worker killed with -9 never shuts its pool down, and an orphaned child would
    live on). ONNX Runtime runs on one thread here: the batch loop has the other core."""
    global _child_lm, _child_whisper
    if nice:
        os.nice(nice)
    _child_lm = LanguageModels.load(Path(model_dir))
    folder = Path(model_dir) / "whisper"
    if whisper and Whisper.available(folder):
        _child_whisper = Whisper(folder, OnnxSettings(intra_op_num_threads=1))

    def exit_with_parent() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=exit_with_parent, name="exit-with-parent", daemon=True).start()


@dataclass(frozen=True, slots=True)
class SearchDone:
    """What one submitted search found, how long it took, and the beam width it ran with."""

    found: list[Searched | Decoded]
    seconds: float
    beam: int


def _second_pass_in_child(jobs: list[Owed], settings: SearchSettings) -> SearchDone:
    started = time.perf_counter()
    found = second_pass(_child_whisper, _child_lm, settings, jobs)
    return SearchDone(found, time.perf_counter() - started, settings.beam)


class FinalsPool:
    """Child processes that run the second pass (:func:`workers.asr.recognizer.second_pass`).

    When ``backlog`` searches are already waiting or running, a new one runs with ``busy_beam`` instead:
    under a burst of finals a narrower search (less accurate, ~2.5x cheaper at 8 than at 32) keeps the
    finals' delay bounded instead of letting the queue grow."""

    def __init__(self, model_dir: Path, processes: int, settings: SearchSettings, busy_beam: int | None = None,
                 backlog: int = 4, nice: int = 0, whisper: bool = True) -> None:
        self.model_dir, self.processes, self.settings, self.backlog = model_dir, processes, settings, backlog
        self.whisper = whisper
        self.nice = nice
        self.busy_settings = dataclasses.replace(settings, beam=min(busy_beam or settings.beam, settings.beam))
        self._waiting = 0
        self._lock = threading.Lock()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        # spawn, not fork: the parent runs ONNX Runtime and client threads, which a fork would copy mid-flight
        return ProcessPoolExecutor(self.processes, multiprocessing.get_context("spawn"),
                                   initializer=_start_child, initargs=(str(self.model_dir), os.getpid(), self.nice, self.whisper))

    def warmup(self) -> None:
        """Start the children and load their models now, not on the first final."""
        lattice = np.full((4, len(ALPHABET) + 1), -10.0, np.float16)
        lattice[:, 0] = 0.0
        audio = np.zeros(8000, np.float32) if self.whisper else None
        for future in [self.search([Owed(lattice, None, None)]) for _ in range(self.processes)]:
            future.result()
        if audio is not None:
            for future in [self.search([Owed(None, None, audio)]) for _ in range(self.processes)]:
                try:
                    future.result()
                except AssertionError:  # the model has no attention decoder
                    break

    @property
    def busy(self) -> bool:
        """``backlog`` searches are waiting or running already."""
        with self._lock:
            return self._waiting >= self.backlog

    def search(self, jobs: list[Owed]) -> Future[SearchDone]:
        """The second pass of each owed final. One caller (the batch loop)."""
        with self._lock:
            settings = self.busy_settings if self._waiting >= self.backlog else self.settings
        try:
            future = self._pool.submit(_second_pass_in_child, jobs, settings)
        except BrokenProcessPool:  # a child died (killed, out of memory): start afresh, once
            log.warning("the finals' beam search pool broke; starting it again")
            self._pool = self._start()
            future = self._pool.submit(_second_pass_in_child, jobs, settings)
        with self._lock:
            self._waiting += 1
        future.add_done_callback(self._done)  # runs at once if the search is done already
        return future

    def _done(self, _: Future[SearchDone]) -> None:
        with self._lock:
            self._waiting -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
