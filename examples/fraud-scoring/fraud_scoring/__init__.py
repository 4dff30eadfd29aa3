"""Card-transaction fraud scoring, served by streaming-inference-workers as a plug-in workload.

The whole workload: ``data`` (a transaction generator to train and demo on), ``train`` (TensorFlow model,
ONNX export with a parity check), ``handler`` (decode, per-card state, model, result), ``settings``,
``metrics``, ``demo`` and ``spec`` (what the core finds through the ``workers.workloads`` entry point).
"""
