"""Rewrite three patterns tf2onnx leaves in a transformer's graph into the few ONNX ops they compute.

ONNX Runtime runs each node at a fixed cost (a few microseconds on this machine's CPU), and tf2onnx writes a
Keras transformer with many small ones. Whisper tiny.en's decoder step was 759 nodes, of which 33 were its
weight products, and took 3.4 ms on one core; the node count, more than the arithmetic, set the step's cost.

- **Tensordot**: a Keras ``Dense`` on a [batch, time, width] input is lowered as a shape computation, a
  Reshape to two axes, the MatMul and a Reshape back (9 nodes). ONNX MatMul broadcasts over leading axes, so
  the MatMul takes the input as it is.
- **Layer norm**: Keras' layer normalization arrives as 12 nodes (two GlobalAveragePools for the moments, Sqrt,
  Reciprocal, ...): one ``LayerNormalization`` (opset 17).
- **Heads**: splitting the last axis into heads and stacking them (Split, one Unsqueeze a head, Concat), and
  back (Split, Squeeze a head, Concat): a Reshape and a Transpose.

The rewrites are structural: each pattern is matched whole or left alone, and :func:`export.keras_to_onnx.export_keras`
checks the rewritten graph against TensorFlow like any other. The first and the last move data only; the layer
norm computes in another order (float32 rounding, 1e-5 here).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

import numpy as np

MATMULS = ("MatMul", "MatMulNBits")


@dataclass
class Simplified:
    """How many of each pattern were rewritten, and the graph's nodes before and after."""

    tensordots: int = 0
    layer_norms: int = 0
    heads: int = 0
    nodes_before: int = 0
    nodes_after: int = 0

    def as_manifest(self) -> dict[str, int]:
        return {"tensordots": self.tensordots, "layer_norms": self.layer_norms, "heads": self.heads,
                "nodes_before": self.nodes_before, "nodes_after": self.nodes_after}


class _Graph:
    """The nodes of an ONNX graph with who produces and who consumes each value."""

    def __init__(self, graph: Any, nodes: list[Any]) -> None:
        self.graph, self.nodes = graph, nodes
        self.initializers = {i.name: i for i in graph.initializer}
        self.producer = {out: n for n in nodes for out in n.output}
        self.consumers: dict[str, dict[int, Any]] = collections.defaultdict(dict)
        for n in nodes:
            for name in n.input:
                self.consumers[name][id(n)] = n  # a node reading a value twice (x * x) consumes it once

    def sole(self, value: str, op: str) -> Any | None:
        """The one consumer of ``value`` that is an ``op``, or None (none, or several)."""
        found = [n for n in self.consumers[value].values() if n.op_type == op]
        return found[0] if len(found) == 1 else None

    def only_consumer(self, value: str) -> Any | None:
        found = list(self.consumers[value].values())
        return found[0] if len(found) == 1 else None

    def constant(self, name: str) -> np.ndarray | None:
        from onnx import numpy_helper

        found = self.initializers.get(name)
        return None if found is None else numpy_helper.to_array(found)

    def add_constant(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.graph.initializer.append(numpy_helper.from_array(value, name))
        self.initializers[name] = self.graph.initializer[-1]
        return name


def _attribute(node: Any, name: str, default: Any = None) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def simplify(model: Any) -> Simplified:
    """Rewrite ``model`` (an ``onnx.ModelProto`` as tf2onnx wrote it, opset >= 17) in place."""
    graph = model.graph
    report = Simplified(nodes_before=len(graph.node))
    nodes = _tensordots(_Graph(graph, list(graph.node)), report)
    nodes = _layer_norms(_Graph(graph, nodes), report)
    nodes = _heads(_Graph(graph, nodes), report, _ranks(model))
    nodes = _live(nodes, {o.name for o in graph.output})
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for n in nodes for name in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.value_info[:]  # shapes of rewired values; ONNX Runtime infers them again
    report.nodes_after = len(nodes)
    return report


def _tensordots(g: _Graph, report: Simplified) -> list[Any]:
    """Reshape -> MatMul -> Reshape of TensorFlow's ``Tensordot`` over the last axis: the MatMul on the input as
    it is, writing the second Reshape's output. The shape computations feeding the Reshapes die with them."""
    dropped: set[int] = set()
    for n in g.nodes:
        if n.op_type not in MATMULS:
            continue
        before, after = g.producer.get(n.input[0]), g.only_consumer(n.output[0])
        if (before is None or after is None or before.op_type != "Reshape" or after.op_type != "Reshape"
                or not before.name.endswith("Tensordot/Reshape") or not after.name.endswith("Tensordot")):
            continue
        n.input[0] = before.input[0]
        n.output[0] = after.output[0]
        dropped.add(id(after))
        report.tensordots += 1
    return [n for n in g.nodes if id(n) not in dropped]


def _layer_norms(g: _Graph, report: Simplified) -> list[Any]:
    """mean = GAP(x); var = GAP((x - mean)^2); m = gamma / sqrt(var + eps); y = x * m + (beta - mean * m), as
    tf2onnx writes Keras' layer norm over the last axis: ``LayerNormalization(x, gamma, beta)``."""
    from onnx import helper

    replaced: dict[int, Any] = {}
    for mean_node in g.nodes:
        if mean_node.op_type != "GlobalAveragePool":
            continue
        x, mean = mean_node.input[0], mean_node.output[0]
        centred = next((c for c in g.consumers[mean].values() if c.op_type == "Sub" and c.input[0] == x), None)
        square = centred and g.sole(centred.output[0], "Mul")
        if not square or square.input[0] != square.input[1]:
            continue
        variance = g.sole(square.output[0], "GlobalAveragePool")
        plus_eps = variance and g.sole(variance.output[0], "Add")
        root = plus_eps and g.sole(plus_eps.output[0], "Sqrt")
        inverse = root and g.sole(root.output[0], "Reciprocal")
        scale = inverse and g.sole(inverse.output[0], "Mul")
        if not scale:
            continue
        eps, gamma = g.constant(plus_eps.input[1]), g.constant(scale.input[1])
        products = [c for c in g.consumers[scale.output[0]].values() if c.op_type == "Mul"]
        on_x = next((c for c in products if x in c.input), None)
        on_mean = next((c for c in products if x not in c.input), None)
        shift = on_mean and g.sole(on_mean.output[0], "Add")
        output = on_x and g.sole(on_x.output[0], "Add")
        if eps is None or gamma is None or not shift or not output or shift.output[0] not in output.input:
            continue
        negated = g.producer.get(next(i for i in on_mean.input if i != scale.output[0]))
        beta = g.constant(shift.input[1])
        if beta is None or negated is None or negated.op_type != "Neg" or negated.input[0] != mean:
            continue
        name = mean_node.name.rsplit("/moments", 1)[0]
        inputs = [x, g.add_constant(f"{name}/gamma", gamma.reshape(-1).astype(np.float32)),
                  g.add_constant(f"{name}/beta", beta.reshape(-1).astype(np.float32))]
        replaced[id(output)] = helper.make_node("LayerNormalization", inputs, [output.output[0]], name=f"{name}/LayerNorm",
                                                axis=-1, epsilon=float(eps.reshape(-1)[0]))
        report.layer_norms += 1
    return [replaced.get(id(n), n) for n in g.nodes]


def _ranks(model: Any) -> dict[str, int]:
    """The rank of every value ONNX shape inference can tell."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model).graph
    return {v.name: len(v.type.tensor_type.shape.dim) for v in (*inferred.value_info, *inferred.input, *inferred.output)
            if v.type.tensor_type.HasField("shape")}


def _heads(g: _Graph, report: Simplified, ranks: dict[str, int]) -> list[Any]:
    """Split(last axis, H) -> Unsqueeze(1) x H -> Concat(1): [B, T, H*D] -> Reshape [B, T, H, D] -> Transpose to
    [B, H, T, D]. Split(1, H) -> Squeeze(1) x H -> Concat(last): the way back. Only where the input's rank is
    known to be 3 (resp. 4): with another, the same nodes mean another layout."""
    from onnx import helper

    dropped: set[int] = set()
    inserted: dict[int, list[Any]] = {}
    for split in g.nodes:
        if split.op_type != "Split" or (len(split.input) > 1 and split.input[1]):
            continue  # uneven parts
        parts = [g.only_consumer(out) for out in split.output]
        if any(p is None for p in parts) or len({p.op_type for p in parts}) != 1:
            continue
        kind = parts[0].op_type
        if kind not in ("Unsqueeze", "Squeeze") or any(len(p.input) < 2 or _ints(g, p.input[1]) != [1] for p in parts):
            continue
        joins = {id(c): c for p in parts if (c := g.only_consumer(p.output[0])) is not None}
        join = next(iter(joins.values())) if len(joins) == 1 else None
        if join is None or join.op_type != "Concat" or list(join.input) != [p.output[0] for p in parts]:
            continue
        heads, axis, join_axis = len(parts), _attribute(split, "axis", 0), _attribute(join, "axis")
        name = split.name
        rank = ranks.get(split.input[0])
        if kind == "Unsqueeze" and rank == 3 and axis in (2, -1) and join_axis == 1:
            shape = g.add_constant(f"{name}/heads_shape", np.asarray([0, 0, heads, -1], np.int64))
            first = helper.make_node("Reshape", [split.input[0], shape], [f"{name}/heads"], name=f"{name}/heads_reshape")
            second = helper.make_node("Transpose", [first.output[0]], [join.output[0]], name=f"{name}/heads_transpose",
                                      perm=[0, 2, 1, 3])
        elif kind == "Squeeze" and rank == 4 and axis == 1 and join_axis in (2, -1):
            shape = g.add_constant(f"{name}/merged_shape", np.asarray([0, 0, -1], np.int64))
            first = helper.make_node("Transpose", [split.input[0]], [f"{name}/merged"], name=f"{name}/merge_transpose",
                                     perm=[0, 2, 1, 3])
            second = helper.make_node("Reshape", [first.output[0], shape], [join.output[0]], name=f"{name}/merge_reshape")
        else:
            continue
        dropped.update({id(split), *map(id, parts)})
        inserted[id(join)] = [first, second]
        report.heads += 1
    kept: list[Any] = []
    for n in g.nodes:
        if id(n) in inserted:
            kept += inserted[id(n)]
        elif id(n) not in dropped:
            kept.append(n)
    return kept


def _ints(g: _Graph, name: str) -> list[int] | None:
    value = g.constant(name)
    return None if value is None else [int(v) for v in value.reshape(-1)]


def _live(nodes: list[Any], outputs: set[str]) -> list[Any]:
    """``nodes`` without those whose outputs nothing reads (in their order)."""
    while True:
        used = {name for n in nodes for name in n.input} | outputs
        kept = [n for n in nodes if any(out in used for out in n.output)]
        if len(kept) == len(nodes):
            return kept
        nodes = kept
