"""``workers bench NAME``: the options every workload's benchmark shares, and the generic command for a
workload whose spec names a :class:`~workers.devtools.bench.workloads.BenchWorkload`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from workers.devtools.bench.workloads import ALL_SYSTEMS, SYSTEMS
from workers.plugin import Command, WorkloadSpec

DEVTOOLS = "workers.devtools"
DESCRIPTION = ("Runs the transport alone (consume + produce, no model), ours, baseline_predict (model.predict per "
               "message) and baseline_tf_function (tf.function per message) through a real broker; prints a table "
               "and ratios.")


def add_common_options(p: argparse.ArgumentParser, systems: tuple[str, ...] = SYSTEMS) -> None:
    p.add_argument("--seconds", type=float, default=15.0, help="seconds each phase (or stream count) offers load")
    p.add_argument("--systems", help=f"comma-separated subset of {','.join(systems)}")
    p.add_argument("--bootstrap", help="an existing Kafka cluster (default: an embedded broker)")
    p.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                   help="a setting for our worker, e.g. WORKERS_MAX_BATCH_WAIT_MS=2 (repeatable)")
    p.add_argument("--plot", metavar="PNG", help="save the latency CDFs here")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--processes", type=int, default=1, metavar="N",
                   help="run ours as `workers serve --processes N` (scale-out on one host; the bench topics get "
                   "max(4, N) partitions)")


def common_options(args: argparse.Namespace, known: tuple[str, ...] = SYSTEMS) -> dict[str, Any]:
    """The shared options as keyword arguments of the bench option dataclasses; ``known``: the systems this
    benchmark runs, all of them by default."""
    systems = tuple(args.systems.split(",")) if args.systems else known
    unknown = set(systems) - set(known)
    if unknown:
        raise SystemExit(f"unknown systems {sorted(unknown)}; known: {', '.join(known)}")
    return {"systems": systems, "bootstrap": args.bootstrap, "plot": Path(args.plot) if args.plot else None,
            "worker_env": dict(item.split("=", 1) for item in args.worker_env), "processes": args.processes}


def start_logging() -> None:
    logging.basicConfig(level="INFO", format="%(asctime)s bench: %(message)s", stream=sys.stderr)
    logging.getLogger("kafka").setLevel(logging.WARNING)


def _configure(p: argparse.ArgumentParser) -> None:
    add_common_options(p, ALL_SYSTEMS)
    p.add_argument("--window", type=int, default=256, help="saturation: inputs kept unanswered (closed loop)")
    p.add_argument("--rates", help="fixed offered rates, comma-separated (default: half of each baseline's "
                   "capacity, and half of ours)")


def command_for(spec: WorkloadSpec) -> Command:
    """Saturation and fixed-rate phases of ``spec``'s bench workload, for ours and the two baselines, after the
    transport alone at saturation (and, for a workload whose state has a changelog, ours without it)."""

    def run(args: argparse.Namespace) -> int:
        from workers.devtools.bench.runner import (
            BenchOptions,
            format_table,
            main_json,
            run_bench,
        )

        start_logging()
        options = BenchOptions(seconds=args.seconds, window=args.window,
                               rates=[float(r) for r in args.rates.split(",")] if args.rates else None,
                               **common_options(args, ALL_SYSTEMS))
        report = run_bench(spec.name, options)
        print(main_json(report) if args.json else format_table(report))
        return 0

    return Command("bench", f"benchmark the {spec.name} worker against plain TensorFlow consumer loops", run,
                   _configure, target=spec.name, description=DESCRIPTION, requires=(DEVTOOLS,))
