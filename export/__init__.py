"""TensorFlow -> ONNX export with the checks every export needs (checker, real ORT load, output parity)."""

from export.keras_to_onnx import ExportReport, ParityError, export_keras

__all__ = ["ExportReport", "ParityError", "export_keras"]
