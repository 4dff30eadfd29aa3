"""A model artifact directory: ``model.onnx`` plus ``manifest.json`` (name, version, I/O, data, metrics)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field


class TensorSpec(BaseModel):
    name: str
    dtype: str
    shape: list[int | str | None]


class Manifest(BaseModel):
    """What a worker, a test or an operator needs to know about a model without opening it."""

    name: str
    version: str
    created: str | None = None
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    labels: list[str] | None = Field(None, description="Class names of the first output, when it is a classifier.")
    data: dict[str, Any] = Field(default_factory=dict, description="Training data: source, licence, hash.")
    metrics: dict[str, Any] = Field(default_factory=dict, description="Held-out evaluation results.")
    export: dict[str, Any] = Field(default_factory=dict, description="Exporter versions and parity check.")


def load_manifest(model_dir: str | Path) -> Manifest:
    path = Path(model_dir) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: a model directory needs model.onnx and manifest.json")
    return Manifest.model_validate(json.loads(path.read_text()))
