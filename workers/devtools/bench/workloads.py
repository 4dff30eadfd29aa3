"""What a benchmarked workload gives ``workers bench``: its traffic, the TensorFlow per-message step its
baselines run, and model-only timing.

A workload's :class:`BenchWorkload` lives in its own package and is named by ``WorkloadSpec.bench``.
Its baselines should use the same trained model as the worker, rebuilt in TensorFlow from the
committed ONNX weights (checked for parity), and do the same per-message work as the worker: decode,
look up state, run the model, post-process and encode the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from workers.settings import OnnxSettings

Step = Callable[[bytes | None, bytes, dict[str, bytes]], bytes]
"""(record key, record value, record headers) -> result value: one message through a baseline."""

SYSTEMS = ("ours", "baseline_predict", "baseline_tf_function")
"""What ``workers bench`` compares: our worker, and the two plain TensorFlow consumer loops below."""
TRANSPORT = "transport"
"""Consume and produce through our Kafka adapters with our commit rule, no model (:mod:`workers.devtools.bench.transport`):
the ceiling any worker on this broker and client has. ``workers bench`` runs it first, at saturation only."""
MEMORY_STATE = "ours_memory_state"
"""Our worker with its per-key state in memory only (``WORKERS_STATE_CHANGELOG=false``): beside ``ours``, what
the state changelog costs. Run at saturation only, and only for workloads whose state has a changelog."""
ALL_SYSTEMS = (TRANSPORT, *SYSTEMS, MEMORY_STATE)
"""Every system ``workers bench`` knows for a workload (the speech bench has its own), in the order it runs
and reports them."""
MODES = ("predict", "tf_function")
"""Baseline (a): ``model.predict(x)`` per message; baseline (b): the model in ``tf.function``, per message."""


@dataclass(frozen=True)
class BenchWorkload:
    name: str
    messages: Callable[[int, int], list[tuple[bytes, bytes]]]  # (n, seed) -> [(key, value)]
    tf_step: Callable[[str], Step]  # mode -> per-message function (imports TensorFlow)
    model_only: Callable[[int, float, OnnxSettings], dict[str, float]]  # (batch, seconds, worker's ORT settings)


def time_session(run: Callable[[], Any], batch: int, seconds: float) -> dict[str, float]:
    """Calls ``run`` (one batch) for about ``seconds``: median batch time and messages per second."""
    run()
    times = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds or len(times) < 5:
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    median = float(np.median(times))
    return {"batch_size": batch, "median_batch_s": round(median, 6), "throughput": round(batch / median, 1)}
