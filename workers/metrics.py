"""Prometheus metrics of every worker: seconds, explicit buckets, few labels (worker, model, topic).

A workload's own series live in its package (``WorkloadSpec.metrics`` names the module) and use the
``workers_<workload>_`` prefix and the same buckets.

Histograms (not summaries) so p50/p95/p99 aggregate across replicas in PromQL. Series about model
work carry the model ``version``, so a hot reload shows as a new series, never a blend.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()  # the *_created series double the output and no dashboard uses them

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

END_TO_END = Histogram(
    "workers_end_to_end_latency_seconds",
    "Event timestamp (Kafka record time) to the result acknowledged by the broker.",
    ["worker", "model", "version", "topic"],
    buckets=LATENCY_BUCKETS,
)
QUEUE_WAIT = Histogram(
    "workers_queue_wait_seconds",
    "Time a decoded message waited in the micro-batcher before its batch started.",
    ["worker", "model", "version", "topic"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "workers_batch_size", "Messages per model call.", ["worker", "model", "version", "topic"], buckets=BATCH_BUCKETS
)
INFERENCE = Histogram(
    "workers_inference_seconds",
    "ONNX Runtime session.run time per call.",
    ["worker", "model", "version", "topic"],
    buckets=LATENCY_BUCKETS,
)
GC_PAUSE = Histogram(
    "workers_gc_pause_seconds",
    "Python's cyclic garbage collections: how long each stopped the process (the batch loop with it), by generation.",
    ["worker", "generation"],
    buckets=LATENCY_BUCKETS,
)
MESSAGES_IN = Counter("workers_messages_in_total", "Records consumed.", ["worker", "topic"])
MESSAGES_OUT = Counter(
    "workers_messages_out_total", "Input messages whose results were acknowledged.", ["worker", "model", "version", "topic"]
)
MESSAGES_DLQ = Counter(
    "workers_messages_dlq_total", "Input messages sent to the dead-letter topic.", ["worker", "topic", "reason"]
)
BATCH_LIMIT = Gauge(
    "workers_batch_limit", "The micro-batcher's limits in force (adaptive batching sets them): size, wait_seconds.",
    ["worker", "topic", "limit"],
)
IN_FLIGHT = Gauge("workers_in_flight", "Messages consumed and not yet committable.", ["worker", "topic"])
PAUSED = Gauge("workers_partitions_paused", "1 while consumption is paused for backpressure.", ["worker", "topic"])
ASSIGNED_PARTITIONS = Gauge(
    "workers_assigned_partitions", "Input partitions this worker owns in its consumer group.", ["worker", "topic"]
)
CONSUMER_LAG = Gauge(
    "workers_consumer_lag", "Records between this worker's position and the log end.", ["worker", "topic", "partition"]
)
COMMITS = Counter("workers_commits_total", "Offset commits, by outcome.", ["worker", "topic", "outcome"])
STATE_KEYS = Gauge("workers_state_keys", "Keys (streams, sessions, conversations) held in state.", ["worker"])
STATE_EVICTIONS = Counter("workers_state_evictions_total", "Keys dropped from state, by reason.", ["worker", "reason"])
STATE_RESTORE = Histogram(
    "workers_state_restore_seconds", "Time to restore the state of newly assigned partitions from the changelog.",
    ["worker"], buckets=LATENCY_BUCKETS,
)
STATE_RESTORED_KEYS = Counter("workers_state_restored_keys_total", "Keys restored from the changelog.", ["worker"])
STATE_CHANGELOG_RECORDS = Counter(
    "workers_state_changelog_records_total", "Records written to the state changelog (tombstones included).", ["worker"]
)
STATE_CHANGELOG_BYTES = Counter("workers_state_changelog_bytes_total", "Bytes of state written to the changelog.", ["worker"])
STATE_CHANGELOG_PENDING = Gauge(
    "workers_state_changelog_pending", "State writes not yet acknowledged (their inputs' offsets wait on them).", ["worker"]
)
STATE_ALREADY_APPLIED = Counter(
    "workers_state_already_applied_total",
    "Re-read inputs skipped because their key's restored state already reflects them (their results were delivered).",
    ["worker"],
)
MODEL_INFO = Gauge(
    "workers_model_info", "1 for the model version a worker serves, and on which provider.",
    ["worker", "model", "version", "provider"],
)
MODEL_RELOADS = Counter(
    "workers_model_reloads_total", "Model versions loaded while serving (hot reload), by outcome.", ["worker", "outcome"]
)


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for each of ``values``, binned in one numpy pass: the engine observes a whole
    batch (or a loop turn's acknowledgements) at once instead of paying a locked Python call per message.
    Same buckets and sum as observing one by one (``tests/workers/test_metrics.py`` checks it)."""
    if not len(values):
        return
    amounts = np.asarray(values, dtype=np.float64)
    bounds = histogram._upper_bounds  # noqa: SLF001 -- prometheus_client keeps no public batch API
    counts = np.bincount(np.searchsorted(bounds, amounts, side="left"), minlength=len(bounds))
    for bucket, count in zip(histogram._buckets, counts[: len(bounds)].tolist(), strict=True):  # noqa: SLF001 (NaN: no bucket)
        if count:
            bucket.inc(count)
    histogram._sum.inc(float(amounts.sum()))  # noqa: SLF001
