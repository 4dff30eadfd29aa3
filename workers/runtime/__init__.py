"""Model runtime: ONNX Runtime sessions and model artifacts. Knows nothing of Kafka."""

from workers.runtime.artifact import Manifest, load_manifest
from workers.runtime.onnx_model import OnnxModel

__all__ = ["Manifest", "OnnxModel", "load_manifest"]
