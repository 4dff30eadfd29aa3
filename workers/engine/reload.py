"""Model hot reload: notice a new version in the model directory, load and warm it aside, hand it over.

The engine asks :meth:`ModelReloader.take` between batches, so a switch never splits a batch and no
message is dropped: messages already decoded go to the new handler, which adopts the old one's state
(or starts fresh where state belongs to the model, see ``Handler.adopt``). Publish a new version by
writing ``model.onnx`` (and its side files) first and ``manifest.json`` last, with a new ``version``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workers import metrics
from workers.engine.handler import Handler
from workers.runtime.artifact import read_version

log = logging.getLogger(__name__)


def manifest_version(model_dir: Path) -> str | None:
    try:
        return read_version(model_dir)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing or half-written: look again next time


class ModelReloader:
    def __init__(self, worker: str, model_dir: Path, current_version: str, load: Callable[[], Handler[Any]],
                 warmup_runs: int, poll_s: float) -> None:
        self.worker = worker
        self.model_dir = model_dir
        self.current = current_version
        self._load = load
        self._warmup_runs = warmup_runs
        self.poll_s = poll_s
        self._last_check = time.monotonic()
        self._loading: threading.Thread | None = None
        self._ready: Handler[Any] | None = None
        self._failed_version: str | None = None

    def check(self) -> None:
        """Start loading a new version in the background if the directory has one (rate-limited)."""
        now = time.monotonic()
        if self.poll_s <= 0 or now - self._last_check < self.poll_s or self._loading is not None or self._ready:
            return
        self._last_check = now
        version = manifest_version(self.model_dir)
        if version is None or version in (self.current, self._failed_version):
            return
        log.info("%s: model version %s found in %s (serving %s); loading it", self.worker, version, self.model_dir, self.current)
        self._loading = threading.Thread(target=self._build, args=(version,), name="model-reload", daemon=True)
        self._loading.start()

    def _build(self, version: str) -> None:
        handler = None
        try:
            handler = self._load()
            handler.warmup(self._warmup_runs)
            if handler.model.version != version:
                log.info("%s: manifest now says %s (was %s when loading started)", self.worker, handler.model.version, version)
            self._ready = handler
        except Exception:
            if handler is not None:
                handler.close()
            log.exception("%s: model version %s failed to load; still serving %s", self.worker, version, self.current)
            self._failed_version = version
            metrics.MODEL_RELOADS.labels(worker=self.worker, outcome="failed").inc()
        finally:
            self._loading = None

    def take(self) -> Handler[Any] | None:
        """The loaded and warmed handler, once; None until one is ready."""
        handler, self._ready = self._ready, None
        if handler is not None:
            self.current = handler.model.version
            metrics.MODEL_RELOADS.labels(worker=self.worker, outcome="ok").inc()
        return handler
