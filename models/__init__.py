"""TensorFlow model definitions and training. Imports TensorFlow lazily: workers never need it."""

from pathlib import Path

ARTIFACTS = Path(__file__).parent / "artifacts"
"""Committed, trained models: one directory each with ``model.onnx`` and ``manifest.json``."""
