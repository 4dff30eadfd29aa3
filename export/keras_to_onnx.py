"""Export a Keras model with tf2onnx and prove the ONNX graph computes what TensorFlow computes.

Three gates, because each has failed on its own here (platform notes: Keras ``gelu`` exported as
``Erfc``, which passes conversion but is no ONNX op): ``onnx.checker`` (full check), a real
ONNX Runtime load on the CPU, and a maximum absolute difference against the Keras outputs. A Keras GRU
becomes ONNX's own GRU op on the way (``export.native_gru``), and passes the same gates.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class ParityError(AssertionError):
    """ONNX Runtime outputs differ from TensorFlow's by more than the tolerance."""


@dataclasses.dataclass(frozen=True)
class ExportReport:
    path: Path
    opset: int
    max_abs_diff: dict[str, float]
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    versions: dict[str, str]
    native_gru: bool = False
    simplified: dict[str, int] | None = None

    def as_manifest(self) -> dict[str, Any]:
        manifest = {
            "tool": "tf2onnx",
            "opset": self.opset,
            "parity_max_abs_diff": self.max_abs_diff,
            "versions": self.versions,
        }
        if self.native_gru:
            manifest["recurrent"] = NATIVE_GRU_NOTE
        if self.simplified:
            manifest["simplified"] = self.simplified
        return manifest


NATIVE_GRU_NOTE = "ONNX GRU op (tf2onnx's step-by-step Loop replaced by export.native_gru)"


def _specs(values: list[Any]) -> list[dict[str, Any]]:
    from onnx import TensorProto

    specs = []
    for v in values:
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in v.type.tensor_type.shape.dim]
        dtype = TensorProto.DataType.Name(v.type.tensor_type.elem_type).lower()
        specs.append({"name": v.name, "dtype": dtype, "shape": dims})
    return specs


def _name_batch_axis(onnx_model: Any) -> None:
    """tf2onnx names the free leading axis ``unk__N``; call it ``batch`` so specs read well."""
    for value in list(onnx_model.graph.input) + list(onnx_model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = "batch"


def export_keras(
    model: Any,
    input_signature: list[Any],
    out_path: str | Path,
    samples: dict[str, np.ndarray],
    opset: int = 17,
    atol: float = 1e-4,
    simplify: bool = False,
) -> ExportReport:
    """Convert ``model`` to ONNX at ``out_path``; raise if the graph is invalid or outputs differ.

    ``input_signature`` holds named ``tf.TensorSpec``s; ``samples`` maps those names to arrays
    used for the parity check (use real data, not zeros: zeros hide wrong weights). ``simplify``: rewrite
    tf2onnx's transformer patterns into fewer nodes first (:mod:`export.simplify`), under the same gates.
    """
    import onnx
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    from export.native_gru import RewriteError, native_gru

    onnx_model, _ = tf2onnx.convert.from_keras(model, input_signature=input_signature, opset=opset)
    try:
        rewritten = native_gru(onnx_model)  # checked below against TensorFlow like the rest of the graph
    except RewriteError as exc:
        log.warning("%s: the recurrent loop stays a Loop (%s)", out_path.name, exc)
        rewritten = False
    simplified = None
    if simplify:
        from export.simplify import simplify as simplify_graph

        simplified = simplify_graph(onnx_model).as_manifest()
        log.info("%s: %s", out_path.name, simplified)
    _name_batch_axis(onnx_model)
    onnx.checker.check_model(onnx_model, full_check=True)
    onnx.save(onnx_model, str(out_path))

    session = ort.InferenceSession(str(out_path), providers=["CPUExecutionProvider"])
    ort_outputs = session.run(None, samples)
    tf_outputs = model({k: tf.constant(v) for k, v in samples.items()} if len(samples) > 1 else next(iter(samples.values())), training=False)
    if isinstance(tf_outputs, dict):
        tf_list = [np.asarray(tf_outputs[o.name]) for o in session.get_outputs()]
    elif isinstance(tf_outputs, (list, tuple)):
        tf_list = [np.asarray(t) for t in tf_outputs]
    else:
        tf_list = [np.asarray(tf_outputs)]
    diffs: dict[str, float] = {}
    for spec, got, want in zip(session.get_outputs(), ort_outputs, tf_list, strict=True):
        if got.shape != want.shape:
            raise ParityError(f"{spec.name}: ONNX shape {got.shape} != TensorFlow shape {want.shape}")
        diffs[spec.name] = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) if got.size else 0.0
        if diffs[spec.name] > atol:
            raise ParityError(f"{spec.name}: max |ONNX - TF| = {diffs[spec.name]:.3g} > {atol:g}")
    return ExportReport(
        path=out_path,
        opset=opset,
        max_abs_diff=diffs,
        inputs=_specs(list(onnx_model.graph.input)),
        outputs=_specs(list(onnx_model.graph.output)),
        versions={
            "tensorflow": tf.__version__,
            "tf2onnx": tf2onnx.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
        },
        native_gru=rewritten,
        simplified=simplified,
    )
