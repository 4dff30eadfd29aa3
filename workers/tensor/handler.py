"""Generic tensor worker: one JSON request per message, any ONNX model (contract: docs/workers/tensor.md).

Request (``tensor.requests``)::

    {"id": "req-1", "inputs": {"<input name>": <nested list, one example, no batch axis>}}

Result (``tensor.results``)::

    {"id": "req-1", "outputs": {"<output name>": [...]}, "label": "3", "score": 0.99,
     "model": "digits", "model_version": "...", "latency": {...}}

``label``/``score`` appear when the model's manifest names the classes of its first output. Each input
is one example without the batch axis; the worker stacks the examples of a micro-batch. Values are
checked against the model's declared dtype and shape before they reach ONNX Runtime, each failure a
dead-letter reason: ``wrong_shape``, ``wrong_type`` (not numbers), ``wrong_dtype`` (fractions for an
integer input), ``out_of_range`` (beyond an integer type), ``not_finite`` (NaN, infinity, float overflow).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from workers.toolkit.codec import check_schema_version, decode_json_object
from workers.engine.handler import Handler, InvalidMessage, Outcome, Pending, Result, latency_fields
from workers.runtime.onnx_model import OnnxModel
from workers.settings import OnnxSettings, Settings
from workers.transport.records import Record

DEFAULT_MODEL = "digits"


class TensorHandler(Handler[tuple[str, dict[str, np.ndarray]]]):
    name = "tensor"
    input_topic = "tensor.requests"
    output_topic = "tensor.results"

    @classmethod
    def from_settings(cls, model_dir: Path, settings: Settings) -> TensorHandler:
        return cls(model_dir, settings.onnx)

    def __init__(self, model_dir: str | Path, onnx: OnnxSettings) -> None:
        self.model = OnnxModel(model_dir, onnx)
        self._example_shapes = {
            name: tuple(d if isinstance(d, int) and d > 0 else None for d in spec.shape[1:])
            for name, spec in self.model.inputs.items()
        }

    def decode(self, record: Record) -> tuple[str, tuple[str, dict[str, np.ndarray]]]:
        payload = decode_json_object(record)
        check_schema_version(payload)
        request_id = payload.get("id", f"{record.topic}-{record.partition}-{record.offset}")
        if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
            raise InvalidMessage("wrong_type", "'id' must be a string or an integer")
        inputs = payload.get("inputs")
        if not isinstance(inputs, dict):
            raise InvalidMessage("missing_field", "'inputs' must be an object of named tensors")
        missing = sorted(set(self._example_shapes) - set(inputs))
        if missing:
            raise InvalidMessage("missing_field", f"inputs lack {missing}; the model takes {sorted(self._example_shapes)}")
        tensors = {name: self._tensor(name, shape, inputs[name]) for name, shape in self._example_shapes.items()}
        key = record.key.decode("utf-8", "replace") if record.key else str(request_id)
        return key, (str(request_id), tensors)

    def _tensor(self, name: str, shape: tuple[int | None, ...], value: Any) -> np.ndarray:
        """One example's input ``name`` as the model's dtype, or the reason it cannot be."""
        want = np.dtype(self.model.input_dtype(name))
        takes = f"the model takes {want.name} of shape {_shape(shape)} per example (no batch axis)"
        try:
            given = np.asarray(value)
        except ValueError:  # ragged nested lists
            raise InvalidMessage("wrong_shape", f"input {name!r} is ragged; {takes}") from None
        if given.dtype.kind not in "biuf":
            raise InvalidMessage("wrong_type", f"input {name!r} is not a numeric tensor (got {given.dtype.kind!r} "
                                 f"values); {takes}")
        if given.ndim != len(shape) or any(w is not None and g != w for g, w in zip(given.shape, shape)):
            raise InvalidMessage("wrong_shape", f"input {name!r} has shape {list(given.shape)}; {takes}")
        if given.dtype.kind == "f" and not np.all(np.isfinite(given)):
            raise InvalidMessage("not_finite", f"input {name!r} holds NaN or infinity")
        if want.kind in "iub":
            if given.dtype.kind == "f" and not np.all(given == np.round(given)):
                raise InvalidMessage("wrong_dtype", f"input {name!r} holds fractions; {takes}")
            low, high = (0, 1) if want.kind == "b" else (np.iinfo(want).min, np.iinfo(want).max)
            if given.size and (given.min() < low or given.max() > high):
                raise InvalidMessage("out_of_range", f"input {name!r} holds values outside {low}..{high}; {takes}")
            return given.astype(want)
        with np.errstate(over="ignore"):
            cast = given.astype(want)
        if not np.all(np.isfinite(cast)):
            raise InvalidMessage("not_finite", f"input {name!r} overflows {want.name}")
        return cast

    def process(self, batch: list[Pending[tuple[str, dict[str, np.ndarray]]]]) -> list[Outcome]:
        feeds = {name: np.stack([item.value[1][name] for item in batch]) for name in self._example_shapes}
        outputs = self.model.run(feeds)
        inference_s = self.model.last_run_s
        labels = self.model.manifest.labels
        first = self.model.output_names[0]
        latencies = latency_fields(batch, inference_s)
        outcomes: list[Outcome] = []
        for i, item in enumerate(batch):
            result: dict[str, Any] = {
                "id": item.value[0],
                "outputs": {name: values[i].tolist() for name, values in outputs.items()},
            }
            if labels:
                scores = outputs[first][i]
                best = int(np.argmax(scores))
                result |= {"label": labels[best], "score": round(float(scores[best]), 6)}
            result |= {
                "model": self.model.name,
                "model_version": self.model.version,
                "latency": latencies[i],
            }
            value = json.dumps(result, allow_nan=False, default=_finite).encode()
            outcomes.append([Result(value, item.record.key)])
        return outcomes


def _shape(shape: tuple[int | None, ...]) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
