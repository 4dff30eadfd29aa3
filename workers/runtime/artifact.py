"""A model artifact directory: ``model.onnx`` plus ``manifest.json`` (name, version, I/O, data, metrics).

:class:`Manifest` is the one reader and writer of ``manifest.json``. A workload whose model carries more
(a dialogue policy, a session model's sizes) subclasses it with typed sections, loads it with
``ItsManifest.load(model_dir)`` and its trainer writes it with ``ItsManifest(...).write(out)``; a
section a subclass does not declare is kept as it is (``extra="allow"``), so a newer trainer's
manifest still loads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

MANIFEST = "manifest.json"


class TensorSpec(BaseModel):
    name: str
    dtype: str
    shape: list[int | str | None]


class Manifest(BaseModel):
    """What a worker, a test or an operator needs to know about a model without opening it."""

    model_config = ConfigDict(extra="allow")

    name: str
    version: str
    created: str | None = None
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    labels: list[str] | None = Field(None, description="Class names of the first output, when it is a classifier.")
    data: dict[str, Any] = Field(default_factory=dict, description="Training data: source, licence, hash.")
    metrics: dict[str, Any] = Field(default_factory=dict, description="Held-out evaluation results.")
    export: dict[str, Any] = Field(default_factory=dict, description="Exporter versions and parity check.")

    @classmethod
    def load(cls, model_dir: str | Path) -> Self:
        path = Path(model_dir) / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"{path}: a model directory needs model.onnx and manifest.json")
        return cls.model_validate(json.loads(path.read_text()))

    def write(self, model_dir: str | Path) -> dict[str, Any]:
        """Write ``manifest.json`` (what was set, nothing more) and return it as a dict."""
        path = Path(model_dir) / MANIFEST
        path.parent.mkdir(parents=True, exist_ok=True)
        content = self.model_dump(mode="json", exclude_unset=True)
        path.write_text(json.dumps(content, indent=2) + "\n")
        return content

    def section(self, name: str, default: Any = None) -> Any:
        """A section no subclass declares (kept as it was read)."""
        return (self.model_extra or {}).get(name, default)


def load_manifest(model_dir: str | Path) -> Manifest:
    return Manifest.load(model_dir)


def write_manifest(model_dir: str | Path, manifest: dict[str, Any], kind: type[Manifest] = Manifest) -> dict[str, Any]:
    """Validate ``manifest`` as ``kind`` and write it; for trainers that assemble the manifest as a dict."""
    return kind.model_validate(manifest).write(model_dir)


def read_version(model_dir: str | Path) -> str:
    """Only the version (hot reload polls it)."""
    return str(json.loads((Path(model_dir) / MANIFEST).read_text())["version"])
