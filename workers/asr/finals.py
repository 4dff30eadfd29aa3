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
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from workers.asr.lm import LanguageModels, Searched, SearchSettings
from workers.asr.recognizer import Owed, second_pass
from workers.asr.text import ALPHABET
from workers.asr.whisper import Decoded, Whisper, feature_frames, window_frames
from workers.garbage_collection import tune_garbage_collection
from workers.settings import OnnxSettings

log = logging.getLogger(__name__)

_child_lm: LanguageModels | None = None
_child_whisper: Whisper | None = None


def _start_child(model_dir: str, parent: int, nice: int = 0, whisper: bool = True, gc_young_threshold: int = 0) -> None:
    """Pool initializer: lower the priority by ``nice``, load the LMs and the attention decoder, tune the garbage
    collector as the worker's own process (the LMs' dicts then stay out of every collection), and leave
    when the worker is gone (a worker killed with -9 never shuts its pool down, and an orphaned child would
    live on). ONNX Runtime runs on one thread here: the batch loop has the other core."""
    global _child_lm, _child_whisper
    if nice:
        os.nice(nice)
    _child_lm = LanguageModels.load(Path(model_dir))
    folder = Path(model_dir) / "whisper"
    if whisper and Whisper.available(folder):
        _child_whisper = Whisper(folder, OnnxSettings(intra_op_num_threads=1))
    tune_garbage_collection(gc_young_threshold, "asr-second-pass")

    def exit_with_parent() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=exit_with_parent, name="exit-with-parent", daemon=True).start()


@dataclass(frozen=True, slots=True)
class SearchDone:
    """What one submitted search found, how long it took, the beam width it ran with, and how many finals
    the call that did it read (it and those that shared its call)."""

    found: list[Searched | Decoded]
    seconds: float
    beam: int
    shared: int = 1


def _second_pass_in_child(jobs: list[Owed], settings: SearchSettings) -> SearchDone:
    started = time.perf_counter()
    found = second_pass(_child_whisper, _child_lm, settings, jobs)
    return SearchDone(found, time.perf_counter() - started, settings.beam, len(jobs))


@dataclass(slots=True, eq=False)  # compared by identity: a field-wise == would compare the audio arrays
class _Waiting:
    """A submitted second pass not yet handed to a process: its jobs, settings and the caller's future."""

    jobs: list[Owed]
    settings: SearchSettings
    future: Future[SearchDone]
    window: int | None
    """The decoder's window when it is one final's audio (finals with the same window share a batch)."""


class FinalsPool:
    """Child processes that run the second pass (:func:`workers.asr.recognizer.second_pass`).

    A search waits in the parent until a process is free; then it goes with up to ``batch - 1`` other
    waiting finals whose audio has the same decoder window, all in one call, so the decoder steps for them
    together (~1.5x the cost of one for two, ~2.4x for four): under load the processes finish more
    finals per second, and alone a final goes at once. A final's text does not depend on its batch
    (:meth:`workers.asr.whisper.Whisper.transcribe`).

    When ``backlog`` searches are already waiting or running, a new one runs with ``busy_beam`` instead:
    under a burst of finals a narrower search (less accurate, ~2.5x cheaper at 8 than at 32) keeps the
    finals' delay bounded instead of letting the queue grow."""

    def __init__(self, model_dir: Path, processes: int, settings: SearchSettings, busy_beam: int | None = None,
                 backlog: int = 4, nice: int = 0, whisper: bool = True, batch: int = 8,
                 gc_young_threshold: int = 0) -> None:
        self.model_dir, self.processes, self.settings, self.backlog = model_dir, processes, settings, backlog
        self.gc_young_threshold = gc_young_threshold
        self.whisper, self.batch = whisper, batch
        self.nice = nice
        self.busy_settings = dataclasses.replace(settings, beam=min(busy_beam or settings.beam, settings.beam))
        self._waiting = 0  # submitted and not done: in self._queue or in a process
        self._queue: deque[_Waiting] = deque()
        self._running = 0  # calls handed to the processes and not done
        self._lock = threading.Lock()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        # spawn, not fork: the parent runs ONNX Runtime and client threads, which a fork would copy mid-flight
        return ProcessPoolExecutor(self.processes, multiprocessing.get_context("spawn"),
                                   initializer=_start_child, initargs=(str(self.model_dir), os.getpid(), self.nice, self.whisper,
                                             self.gc_young_threshold))

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
        """The second pass of each owed final. One caller (the batch loop). Cancelling the future before a
        process takes it drops the search."""
        future: Future[SearchDone] = Future()
        window = window_frames(feature_frames(len(jobs[0].audio))) \
            if len(jobs) == 1 and jobs[0].audio is not None else None
        with self._lock:
            settings = self.busy_settings if self._waiting >= self.backlog else self.settings
            waiting = _Waiting(jobs, settings, future, window)
            self._queue.append(waiting)
            self._waiting += 1
        future.add_done_callback(partial(self._forget_if_cancelled, waiting))
        self._hand_out()
        return future

    def _forget_if_cancelled(self, waiting: _Waiting, future: Future[SearchDone]) -> None:
        """A search cancelled while it waits (an early pass the speaker talked past) leaves the queue and the
        backlog count at once, not when a process next comes free: else it would count toward :attr:`busy`
        and narrow the next final's beam for nothing. One that :meth:`_take` has popped is its to count."""
        if not future.cancelled():
            return
        with self._lock:
            try:
                self._queue.remove(waiting)
            except ValueError:
                return
            self._waiting -= 1

    def _hand_out(self) -> None:
        """While a process is free, send it the oldest waiting search and those that can share its call."""
        while True:
            with self._lock:
                if self._running >= self.processes:
                    return
                taken = self._take()
                if not taken:
                    return
                self._running += 1
            try:
                call = self._submit([job for waiting in taken for job in waiting.jobs], taken[0].settings)
            except Exception as exc:  # the pool is shut down or cannot start: the callers get the error, no hang
                call = Future()
                call.set_exception(exc)
            call.add_done_callback(partial(self._done, taken))  # runs at once if the call is done already

    def _submit(self, jobs: list[Owed], settings: SearchSettings) -> Future[SearchDone]:
        pool = self._pool
        try:
            return pool.submit(_second_pass_in_child, jobs, settings)
        except BrokenProcessPool:  # a child died (killed, out of memory): start afresh, once
            with self._lock:
                if self._pool is pool:  # not already started afresh by the other thread that hands out
                    log.warning("the finals' second-pass pool broke; starting it again")
                    self._pool = self._start()
            return self._pool.submit(_second_pass_in_child, jobs, settings)

    def _take(self) -> list[_Waiting]:
        """The oldest search not cancelled, and waiting ones with its window and settings (under the lock)."""
        while self._queue:
            first = self._queue.popleft()
            if first.future.set_running_or_notify_cancel():
                break
            self._waiting -= 1
        else:
            return []
        taken = [first]
        if first.window is not None:
            for waiting in list(self._queue):
                if len(taken) >= self.batch:
                    break
                if waiting.window == first.window and waiting.settings == first.settings:
                    self._queue.remove(waiting)
                    if waiting.future.set_running_or_notify_cancel():
                        taken.append(waiting)
                    else:
                        self._waiting -= 1
        return taken

    def _done(self, taken: list[_Waiting], call: Future[SearchDone]) -> None:
        """A call is done (in the pool's own thread): hand out the next one first, so the process does not
        wait on the callers' callbacks, then answer this call's searches."""
        with self._lock:
            self._running -= 1
            self._waiting -= len(taken)
        self._hand_out()
        try:
            done = call.result()
        except BaseException as exc:  # the caller decides (the handler sends the greedy final)
            for waiting in taken:
                waiting.future.set_exception(exc)
            return
        start = 0
        for waiting in taken:
            found = done.found[start:start + len(waiting.jobs)]
            start += len(waiting.jobs)
            waiting.future.set_result(SearchDone(found, done.seconds, done.beam, done.shared))

    def close(self) -> None:
        with self._lock:
            waiting, self._queue = list(self._queue), deque()
        for left in waiting:
            left.future.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
