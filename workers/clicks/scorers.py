"""Which scorer a clicks model directory holds, loaded: the ONNX session model or the successor baseline."""

from __future__ import annotations

from pathlib import Path

from workers.clicks.baseline import SuccessorBaseline
from workers.clicks.model import SessionModel
from workers.clicks.scoring import SessionScorer
from workers.runtime.artifact import load_manifest
from workers.settings import OnnxSettings


def load_scorer(model_dir: str | Path, onnx_settings: OnnxSettings | None = None) -> SessionScorer:
    """The scorer a model directory holds: the ONNX session model, or the successor-count baseline."""
    model_dir = Path(model_dir)
    if load_manifest(model_dir).section("session", {}).get("kind", "gru") == "baseline":
        return SuccessorBaseline.load(model_dir)
    return SessionModel(model_dir, onnx_settings or OnnxSettings())
