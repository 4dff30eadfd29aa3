"""A state codec for state made of objects, numpy arrays and plain values (an audio stream's model caches,
decoder and audio): what a workload gives :class:`workers.engine.handler.StatefulHandler.state_codec` when
writing a codec by hand would mirror every class.

Exact: arrays go bit for bit, floats through ``repr`` (JSON), objects attribute by attribute, so restored
state computes what the original would have. Safe to read: only the classes named when the codec is made
are built back (no pickle: a changelog topic is not a place to run code from); anything else is refused
when writing, so a class added to the state later fails a test, not a restore.

Layout: 4-byte big-endian length, a JSON tree, then the arrays' bytes. Tree nodes: JSON scalars as they are;
``{"L": [..]}`` list, ``{"T": [..]}`` tuple, ``{"D": [[k, v], ..]}`` dict, ``{"A": [start, dtype, shape]}``
array, ``{"N": [start, dtype]}`` numpy scalar, ``{"B": [start, size]}`` bytes, ``{"O": [class, {attr: node}]}``.

A class may name attributes that are derived from the rest and rebuilt on use (a search over frames the state
also holds) in ``__snapshot_exclude__``: they are not written, and come back as None. A dataclass field the
snapshot lacks (added to the class after the snapshot was written, as a rolling upgrade meets it) comes back
as its default.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from typing import Any

import numpy as np

_PLAIN = (type(None), bool, int, float, str)


def _attributes(obj: object) -> dict[str, Any]:
    names: list[str] = []
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        names += [slots] if isinstance(slots, str) else list(slots)
    skipped = {"__weakref__", *getattr(type(obj), "__snapshot_exclude__", ())}
    values = {n: getattr(obj, n) for n in names if n not in skipped and hasattr(obj, n)}
    return values | {k: v for k, v in getattr(obj, "__dict__", {}).items() if k not in skipped}


class SnapshotCodec:
    def __init__(self, *classes: type) -> None:
        self._classes = {self._name(c): c for c in classes}

    @staticmethod
    def _name(cls: type) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"

    def encode(self, state: object) -> bytes:
        blobs: list[bytes] = []
        offset = [0]

        def blob(data: bytes) -> int:
            start = offset[0]
            blobs.append(data)
            offset[0] += len(data)
            return start

        def node(value: Any) -> Any:
            if isinstance(value, _PLAIN):
                return value
            if isinstance(value, np.ndarray):
                if value.dtype.hasobject:
                    raise TypeError("arrays of Python objects cannot be snapshotted")
                return {"A": [blob(np.ascontiguousarray(value).tobytes()), value.dtype.str, list(value.shape)]}
            if isinstance(value, np.generic):
                return {"N": [blob(np.asarray(value).tobytes()), value.dtype.str]}
            if isinstance(value, bytes | bytearray):
                return {"B": [blob(bytes(value)), len(value)]}
            if isinstance(value, list):
                return {"L": [node(v) for v in value]}
            if isinstance(value, dict):
                return {"D": [[node(k), node(v)] for k, v in value.items()]}
            name = self._name(type(value))
            if name in self._classes:
                fields = value._asdict() if hasattr(value, "_fields") else _attributes(value)
                return {"O": [name, {k: node(v) for k, v in fields.items()}]}
            if isinstance(value, tuple):
                return {"T": [node(v) for v in value]}
            raise TypeError(f"{name} is not among the classes this snapshot codec may write")

        tree = json.dumps(node(state), separators=(",", ":")).encode()
        return struct.pack(">I", len(tree)) + tree + b"".join(blobs)

    def decode(self, data: bytes) -> Any:
        (size,) = struct.unpack_from(">I", data)
        base = 4 + size
        view = memoryview(data)

        def build(node: Any) -> Any:
            if not isinstance(node, dict):
                return node
            (tag, body), = node.items()
            if tag == "A":
                start, dtype, shape = body
                dt = np.dtype(dtype)
                count = int(np.prod(shape)) if shape else 1
                return np.frombuffer(view, dt, count, base + start).reshape(shape).copy()
            if tag == "N":
                start, dtype = body
                return np.frombuffer(view, np.dtype(dtype), 1, base + start)[0]
            if tag == "B":
                start, length = body
                return bytes(view[base + start:base + start + length])
            if tag == "L":
                return [build(v) for v in body]
            if tag == "T":
                return tuple(build(v) for v in body)
            if tag == "D":
                return {build(k): build(v) for k, v in body}
            if tag == "O":
                name, fields = body
                cls = self._classes.get(name)
                if cls is None:
                    raise ValueError(f"snapshot names class {name!r}, not one this codec may build")
                values = {k: build(v) for k, v in fields.items()}
                if hasattr(cls, "_fields"):
                    return cls(**values)
                obj = cls.__new__(cls)
                for key, value in values.items():
                    object.__setattr__(obj, key, value)
                for key in getattr(cls, "__snapshot_exclude__", ()):
                    object.__setattr__(obj, key, None)
                for spec in getattr(cls, "__dataclass_fields__", {}).values():  # a field added since it was written
                    if spec.name not in values and not hasattr(obj, spec.name):
                        if spec.default is not dataclasses.MISSING:
                            object.__setattr__(obj, spec.name, spec.default)
                        elif spec.default_factory is not dataclasses.MISSING:
                            object.__setattr__(obj, spec.name, spec.default_factory())
                return obj
            raise ValueError(f"unknown snapshot node {tag!r}")

        return build(json.loads(bytes(view[4:base])))


__all__ = ["SnapshotCodec"]
