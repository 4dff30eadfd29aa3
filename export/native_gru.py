"""Replace the ``Loop`` tf2onnx makes of a Keras GRU with ONNX's own ``GRU`` op.

tf2onnx turns a Keras 3 GRU (``reset_after=True``) into a ``Loop`` whose body reads one time step with
``Gather``, runs the cell as a dozen small ops and checks its condition on every step. ONNX Runtime runs
such a body op by op, step by step; on the CUDA execution provider the loop's control values live on the
CPU, so every step copies between devices (the platform notes saw "Memcpy nodes are added to the graph"
and 10-13 ms per call even at batch 1). ONNX's ``GRU`` op computes the same recurrence in one kernel
(``linear_before_reset=1`` is Keras' ``reset_after``), with CPU and CUDA implementations.

The rewrite reads the gate weights from the loop's inputs, so it needs neither TensorFlow nor the Keras
model, and :func:`native_gru_file` proves the new graph computes what the old one did before it is kept.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


class RewriteError(ValueError):
    """The graph's loop is not a Keras GRU this rewrite understands, or the rewrite changed its outputs."""


def _gru_loop(graph: Any) -> tuple[Any, str, int, dict[str, np.ndarray]] | None:
    """(the loop, its time-major input sequence, the position of the carried state among its inputs, the
    kernel/recurrent/bias arrays), or None when the graph has no loop."""
    from onnx import numpy_helper

    loops = [n for n in graph.node if n.op_type == "Loop"]
    if not loops:
        return None
    if len(loops) > 1:
        raise RewriteError(f"{len(loops)} loops; this rewrite handles one GRU")
    loop = loops[0]
    body = next(a.g for a in loop.attribute if a.name == "body")
    initializers = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    names = [i.name for i in body.input]
    outer = dict(zip(names, loop.input, strict=True))  # body input -> loop input
    matmuls = [n for n in body.node if n.op_type == "MatMul"]
    gathers = [n for n in body.node if n.op_type == "Gather" and n.input[0] not in outer]
    if len(matmuls) != 2 or len(gathers) != 1:
        raise RewriteError("the loop body is not a GRU cell (expected two MatMul and one Gather of the sequence)")
    weights: dict[str, np.ndarray] = {}
    state_at = -1
    for matmul in matmuls:
        operand, weight = matmul.input
        array = initializers.get(outer.get(weight, ""))
        if array is None or array.ndim != 2:
            raise RewriteError(f"MatMul weight {weight!r} is not a constant matrix")
        if operand == gathers[0].output[0]:
            weights["kernel"] = array
        elif operand in outer:
            weights["recurrent"] = array
            state_at = names.index(operand)
        else:
            raise RewriteError(f"MatMul operand {operand!r} is neither the time step nor the carried state")
    if set(weights) != {"kernel", "recurrent"}:
        raise RewriteError("could not tell the input kernel from the recurrent kernel")
    hidden = weights["recurrent"].shape[0]
    biases = [initializers[outer[n]] for n in names if outer[n] in initializers
              and initializers[outer[n]].shape == (2, 3 * hidden)]
    if len(biases) != 1 or weights["recurrent"].shape != (hidden, 3 * hidden):
        raise RewriteError("no (2, 3 x hidden) bias: not a reset_after GRU")
    weights["bias"] = biases[0]
    return loop, gathers[0].input[0], state_at, weights


def native_gru(model: Any) -> bool:
    """Replace ``model``'s GRU loop by a ``GRU`` node, in place. False when it has no loop; RewriteError
    (``model`` untouched) when the loop is not a GRU this rewrite understands."""
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    found = _gru_loop(graph)
    if found is None:
        return False
    loop, sequence, state_at, w = found
    hidden = w["recurrent"].shape[0]
    carried = len(loop.input) - 2
    if len(loop.output) != carried + 1:
        raise RewriteError(f"the loop has {len(loop.output) - carried} scan outputs; a GRU has one")
    initial, final, outputs = loop.input[state_at], loop.output[state_at - 2], loop.output[-1]
    prefix = loop.name or "gru"
    # Keras: kernel (in, 3h) and recurrent (h, 3h), gates z, r, h; bias rows: input, recurrent. ONNX: W (1, 3h, in),
    # R (1, 3h, h) and B (1, 6h) in the same z, r, h order.
    tensors = {f"{prefix}/W": w["kernel"].T[None], f"{prefix}/R": w["recurrent"].T[None],
               f"{prefix}/B": w["bias"].reshape(1, 6 * hidden), f"{prefix}/axis0": np.array([0], np.int64),
               f"{prefix}/axis1": np.array([1], np.int64)}
    nodes = [
        helper.make_node("Unsqueeze", [initial, f"{prefix}/axis0"], [f"{prefix}/initial_h"]),
        helper.make_node("GRU", [sequence, f"{prefix}/W", f"{prefix}/R", f"{prefix}/B", "", f"{prefix}/initial_h"],
                         [f"{prefix}/Y", f"{prefix}/Y_h"], name=f"{prefix}/GRU", hidden_size=hidden,
                         linear_before_reset=1),
        helper.make_node("Squeeze", [f"{prefix}/Y", f"{prefix}/axis1"], [outputs]),
        helper.make_node("Squeeze", [f"{prefix}/Y_h", f"{prefix}/axis0"], [final]),
    ]
    kept = [n for n in graph.node if n is not loop]
    at = next(i for i, n in enumerate(graph.node) if n is loop)
    del graph.node[:]
    graph.node.extend(kept[:at] + nodes + kept[at:])
    graph.initializer.extend(numpy_helper.from_array(a.astype(np.float32) if a.dtype != np.int64 else a, name)
                             for name, a in tensors.items())
    _prune(graph)
    onnx.checker.check_model(model, full_check=True)
    return True


def _prune(graph: Any) -> None:
    """Drop the nodes and initializers nothing reads any more (the loop's trip count and condition)."""
    wanted = {o.name for o in graph.output}
    while True:
        used = wanted | {i for n in graph.node for i in n.input}
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {i for n in graph.node for i in n.input}
    for initializer in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(initializer)


def native_gru_file(path: str | Path, feeds: list[dict[str, np.ndarray]], atol: float = 1e-4) -> float | None:
    """Rewrite the ONNX file at ``path`` in place when it holds a GRU loop, after checking on ``feeds`` that
    ONNX Runtime gives the same outputs (to ``atol``) before and after. Returns the largest difference
    seen, or None when there was nothing to rewrite."""
    import onnx
    import onnxruntime as ort

    path = Path(path)
    rewritten = onnx.load(str(path))
    if not native_gru(rewritten):
        return None
    before = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # the file is still the old graph
    after = ort.InferenceSession(rewritten.SerializeToString(), providers=["CPUExecutionProvider"])
    if any(n.op_type == "Loop" for n in rewritten.graph.node):
        raise RewriteError("a loop is left after the rewrite")
    worst = 0.0
    for feed in feeds:
        for spec, old, new in zip(before.get_outputs(), before.run(None, feed), after.run(None, feed), strict=True):
            if old.shape != new.shape:
                raise RewriteError(f"{spec.name}: shape {new.shape} after the rewrite, {old.shape} before")
            diff = float(np.max(np.abs(old.astype(np.float64) - new))) if old.size else 0.0
            if diff > atol:
                raise RewriteError(f"{spec.name}: max |after - before| = {diff:.3g} > {atol:g}")
            worst = max(worst, diff)
    onnx.save(rewritten, str(path))
    return worst
