"""What a workload exports so the core can serve, configure, train, demo and benchmark it.

A workload is one package with one :class:`WorkloadSpec`, registered under the entry-point group
``workers.workloads`` of its distribution::

    [project.entry-points."workers.workloads"]
    churn = "churn_scoring.spec:SPEC"

The core (``serve``, ``cli``, settings, the demo and the bench runner) only iterates over the specs it
finds there; it never names a workload. A spec is cheap to import: everything heavy (the handler, its
model, TensorFlow) is named by ``"module:attribute"`` and imported only when that part is used.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

    from workers.engine.handler import Handler

ENTRY_POINT_GROUP = "workers.workloads"


def importable(module: str) -> bool:
    """Whether ``module`` can be imported here, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def load_object(reference: str) -> Any:
    """``"package.module:attribute"`` -> the attribute, imported now."""
    module, _, attribute = reference.partition(":")
    if not attribute:
        raise ValueError(f"{reference!r}: expected 'module:attribute'")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Command:
    """One CLI verb a workload adds: ``workers VERB TARGET ...`` (``target`` set) or ``workers VERB ...``.

    ``configure`` adds the verb's own arguments to its parser; ``run`` gets the parsed arguments and
    returns the exit code. Both should import heavy modules inside, so ``workers --help`` stays fast."""

    verb: str
    help: str
    run: Callable[[argparse.Namespace], int]
    configure: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    target: str | None = None
    description: str | None = None
    requires: tuple[str, ...] = ()
    """Modules the verb needs (e.g. ``workers.devtools``, which worker images leave out); where one is
    missing the CLI does not offer the verb."""

    def available(self) -> bool:
        return all(importable(module) for module in self.requires)


@dataclass(frozen=True)
class WorkloadSpec:
    """Everything the core needs to know about one workload.

    ``handler`` names the :class:`~workers.engine.handler.Handler` subclass: its class attributes declare
    the topics, its ``from_settings(model_dir, settings)`` builds the loaded handler; ``default_model`` is the model directory served
    when neither ``--model`` nor ``WORKERS_MODEL_DIR`` names one. ``settings`` is the workload's own
    settings section (a ``pydantic_settings.BaseSettings`` subclass; its ``yaml_section`` is the YAML
    key). ``metrics`` names the module that defines the workload's own Prometheus series, imported
    before serving so they are exported from the start. ``demo`` names a callable ``(rate) -> DemoTraffic``
    for ``workers demo``; ``bench`` names a bench workload object for ``workers bench`` (see
    ``workers.devtools.bench.workloads.BenchWorkload``)."""

    name: str
    description: str
    handler: str
    default_model: Path | None = None
    settings: type[BaseSettings] | None = None
    metrics: str | None = None
    commands: tuple[Command, ...] = ()
    demo: str | None = None
    bench: str | None = None

    def handler_class(self) -> type[Handler[Any]]:
        """The handler class (topics, partitions), imported now; its model is not loaded."""
        return load_object(self.handler)

