"""Streaming real-time inference workers: Kafka in, ONNX Runtime, Kafka out."""

__version__ = "0.1.0"
