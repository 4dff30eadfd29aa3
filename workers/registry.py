"""The workers this package serves, by name. Each entry builds a ready (loaded) handler."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from models import ARTIFACTS
from workers.engine.handler import Handler
from workers.settings import OnnxSettings


def _tensor(model_dir: Path | None, onnx: OnnxSettings) -> Handler:
    from workers.tensor.handler import DEFAULT_MODEL, TensorHandler

    return TensorHandler(model_dir or ARTIFACTS / DEFAULT_MODEL, onnx)


WORKERS: dict[str, Callable[[Path | None, OnnxSettings], Handler]] = {"tensor": _tensor}
"""Name -> factory(model_dir or None for the committed default, onnx settings)."""

DESCRIPTIONS = {"tensor": "any ONNX model, JSON tensors in and out (default: the digits classifier)"}


def build_handler(name: str, model_dir: str | Path | None, onnx: OnnxSettings) -> Handler:
    if name not in WORKERS:
        raise SystemExit(f"unknown worker {name!r}; known: {', '.join(sorted(WORKERS))}")
    return WORKERS[name](Path(model_dir) if model_dir else None, onnx)
