"""The workloads installed in this environment, found through the ``workers.workloads`` entry points.

This package registers its own workloads the same way a company's package registers its model, so the
core treats both alike. ``WORKERS_EXTRA_WORKLOADS`` (comma-separated ``module:attribute`` references)
adds specs without installing a distribution, e.g. while developing one.
"""

from __future__ import annotations

import os
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workers.plugin import ENTRY_POINT_GROUP, WorkloadSpec, load_object

if TYPE_CHECKING:
    from workers.engine.handler import Handler
    from workers.settings import Settings


@cache
def _discover(extra: str) -> dict[str, WorkloadSpec]:
    found: dict[str, WorkloadSpec] = {}
    references = [(ep.name, ep.value) for ep in entry_points(group=ENTRY_POINT_GROUP)]
    references += [(None, ref.strip()) for ref in extra.split(",") if ref.strip()]
    for registered, reference in references:
        spec = load_object(reference)
        if not isinstance(spec, WorkloadSpec):
            raise TypeError(f"{reference} is a {type(spec).__name__}, not a workers.plugin.WorkloadSpec")
        if registered is not None and registered != spec.name:
            raise ValueError(f"entry point {registered!r} -> {reference} names its spec {spec.name!r}")
        if spec.name in found and found[spec.name] != spec:
            raise ValueError(f"two workloads are called {spec.name!r}: {reference} and another installed package")
        found[spec.name] = spec
    return dict(sorted(found.items()))


def workloads() -> dict[str, WorkloadSpec]:
    """Name -> spec of every installed workload, sorted by name."""
    return _discover(os.environ.get("WORKERS_EXTRA_WORKLOADS", ""))


def get(name: str) -> WorkloadSpec:
    known = workloads()
    if name not in known:
        raise SystemExit(f"unknown worker {name!r}; installed: {', '.join(known) or 'none'}")
    return known[name]


def handler_class(name: str) -> type[Handler[Any]]:
    """The handler class (topics, partitions) without loading its model."""
    return get(name).handler_class()


def build_handler(name: str, model_dir: str | Path | None, settings: Settings) -> Handler[Any]:
    """The loaded handler of workload ``name`` on ``model_dir`` (None: the workload's committed model)."""
    spec = get(name)
    directory = Path(model_dir) if model_dir else spec.default_model
    if directory is None:
        raise SystemExit(f"worker {name!r} ships no model: give one with --model DIR or WORKERS_MODEL_DIR")
    return spec.handler_class().from_settings(directory, settings)
