"""Generic tensor worker: serves any exported ONNX model over Kafka with JSON tensors (Open Inference Protocol style)."""
