"""ONNX Runtime session: provider choice with a logged fallback, warm-up, timed runs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort

from workers.runtime.artifact import Manifest, load_manifest
from workers.settings import OnnxSettings

log = logging.getLogger(__name__)

_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}
_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}

RunObserver = Callable[[float, int], None]
"""Told ``(seconds, batch_size)`` after every run; the engine turns it into a histogram."""


def choose_providers(preferred: list[str]) -> list[str]:
    available = ort.get_available_providers()
    chosen = [p for p in preferred if p in available]
    skipped = [p for p in preferred if p not in available]
    if skipped:
        log.info("ONNX Runtime providers not available here: %s (available: %s)", skipped, available)
    return chosen or ["CPUExecutionProvider"]


class OnnxModel:
    def __init__(self, model_dir: str | Path, settings: OnnxSettings, manifest: Manifest | None = None,
                 filename: str = "model.onnx") -> None:
        """``filename``: the graph in ``model_dir`` (a directory may hold several, e.g. an encoder and a
        decoder, under one manifest)."""
        self.model_dir = Path(model_dir)
        self.manifest = manifest or load_manifest(self.model_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = settings.intra_op_num_threads
        options.inter_op_num_threads = settings.inter_op_num_threads
        spin = "1" if settings.allow_spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spin)
        options.add_session_config_entry("session.inter_op.allow_spinning", spin)
        options.graph_optimization_level = _OPT_LEVELS[settings.graph_optimization_level]
        self.session = ort.InferenceSession(
            str(self.model_dir / filename), options, providers=choose_providers(settings.providers)
        )
        self.provider = self.session.get_providers()[0]
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.observer: RunObserver | None = None
        self.last_run_s = 0.0
        log.info(
            "model %s version %s loaded on %s (inputs %s)",
            self.name,
            self.version,
            self.provider,
            {n: (i.type, i.shape) for n, i in self.inputs.items()},
        )

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    def input_dtype(self, name: str) -> type:
        return _ORT_DTYPES[self.inputs[name].type]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        values = self.session.run(self.output_names, dict(feeds))
        self.last_run_s = time.perf_counter() - start
        if self.observer is not None:
            batch = len(next(iter(feeds.values()))) if feeds else 0
            self.observer(self.last_run_s, batch)
        return dict(zip(self.output_names, values, strict=True))

    def dummy_feeds(self, batch_size: int = 1) -> dict[str, np.ndarray]:
        """Zeros of the right dtype; symbolic dimensions become ``batch_size`` first, then 1."""
        feeds = {}
        for name, spec in self.inputs.items():
            shape = [d if isinstance(d, int) and d > 0 else (batch_size if i == 0 else 1) for i, d in enumerate(spec.shape)]
            feeds[name] = np.zeros(shape, dtype=_ORT_DTYPES[spec.type])
        return feeds

    def warmup(self, runs: int, feeds: Mapping[str, np.ndarray] | None = None) -> None:
        """First runs allocate arenas and pick kernels; do them before taking traffic."""
        observer, self.observer = self.observer, None
        try:
            for _ in range(runs):
                self.run(feeds if feeds is not None else self.dummy_feeds())
        finally:
            self.observer = observer
