"""The generic tensor workload: any ONNX model, JSON tensors in and out (docs/workers/tensor.md)."""

from models import ARTIFACTS
from workers.plugin import WorkloadSpec
from workers.tensor.commands import COMMANDS

SPEC = WorkloadSpec(
    name="tensor",
    description="any ONNX model, JSON tensors in and out (default: the digits classifier)",
    handler="workers.tensor.handler:TensorHandler",
    default_model=ARTIFACTS / "digits",
    commands=COMMANDS,
    demo="workers.tensor.demo:digits_workload",
)
