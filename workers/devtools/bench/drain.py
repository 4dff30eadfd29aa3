"""The worker alone, draining a backlog: what one message costs the worker itself, without a load generator
competing for the cores. The tool for profiling the hot path one change at a time::

    python -m workers.devtools.bench.drain WORKLOAD --messages 60000 [--profile out.prof] [--repeat 2]

It starts the embedded broker, produces ``--messages`` of the workload's bench traffic to the input topic,
then runs the worker's engine in this process (as ``workers serve`` wires it, settings from the environment)
until every message is answered and committed. It prints messages per second and the CPU time per message:
the whole process (Python and the client's threads) and the engine's loop thread alone, and the time per
message spent in Python's garbage collections. ``--profile`` writes a
cProfile file of the drains and prints its top functions; ``--repeat`` drains again in the same process, each
time a fresh backlog on topics of its own (the embedded broker's fetches slow down as a topic fills).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
from typing import Any

from prometheus_client import REGISTRY

from workers import registry
from workers.devtools.broker import EmbeddedBroker, free_port
from workers.engine.engine import StreamEngine
from workers.garbage_collection import tune_garbage_collection, untune_garbage_collection
from workers.plugin import load_object
from workers.serve import single_threaded_numpy, state_changelog
from workers.registry import build_handler
from workers.settings import Settings, load_settings
from workers.topics import Topics
from workers.transport.factory import ensure_topics, make_consumer, make_producer
from workers.transport.records import OutgoingRecord


class _CountingConsumer:
    """The worker's consumer, counting what it hands the engine (the drain ends when all is consumed and done)."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.consumed = inner, 0

    def poll(self, timeout_s: float, max_records: int) -> Any:
        records = self.inner.poll(timeout_s, max_records)
        self.consumed += len(records)
        return records

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def produce_backlog(settings: Settings, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = make_producer(settings.kafka, "drain-load")
    failed: list[Exception] = []
    for key, value in messages:
        producer.produce(OutgoingRecord(topic, value, key), lambda error, _at: error and failed.append(error))
    if not producer.flush(60) or failed:
        raise RuntimeError(f"producing the backlog failed: {failed[:1] or 'flush timed out'}")
    producer.close()


def drain(worker: str, settings: Settings, n: int, seed: int, profile: cProfile.Profile | None) -> dict[str, float]:
    """Produce ``n`` messages, then serve until all are answered; the drain's figures."""
    bench = load_object(registry.get(worker).bench)
    handler = build_handler(worker, settings.engine.model_dir, settings)
    handler.warmup(settings.onnx.warmup_runs)
    topics = Topics.of_handler(handler, settings.engine)
    group = f"drain-{worker}-{seed}"
    changelog = state_changelog(handler, settings, group, f"drain-{seed}")
    to_create = topics.to_create()
    if changelog is not None:
        to_create[changelog.topic] = topics.partitions
    ensure_topics(settings.kafka, to_create)
    produce_backlog(settings, topics.input, bench.messages(n, seed))
    consumer = _CountingConsumer(make_consumer(settings.kafka, group, "earliest", f"drain-{seed}"))
    engine = StreamEngine(handler, settings.engine, consumer, make_producer(settings.kafka, f"drain-{seed}"),
                          changelog=changelog)
    collector = tune_garbage_collection(settings.engine.gc_young_threshold, worker)  # as `workers serve` does
    first_poll: list[float] = []

    def done() -> bool:
        if consumer.consumed and not first_poll:
            first_poll.append(time.perf_counter())
        return consumer.consumed >= n and engine.tracker.in_flight == 0

    gc_before = _gc_pause_s(worker)
    wall, cpu, loop_cpu = time.perf_counter(), time.process_time(), time.thread_time()
    if profile is not None:
        profile.enable()
    try:
        engine.run(until=done)  # drains and commits on the way out
    finally:
        if profile is not None:
            profile.disable()
        untune_garbage_collection(collector)
    end = time.perf_counter()
    cpu_s, loop_cpu_s = time.process_time() - cpu, time.thread_time() - loop_cpu
    started = first_poll[0] if first_poll else wall  # from the first record: not the group join
    return {"messages": n, "seconds": round(end - started, 3), "msg_per_s": round(n / (end - started), 1),
            "cpu_us_per_msg": round(cpu_s / n * 1e6, 1), "loop_cpu_us_per_msg": round(loop_cpu_s / n * 1e6, 1),
            "gc_us_per_msg": round((_gc_pause_s(worker) - gc_before) / n * 1e6, 1), "join_s": round(started - wall, 3)}


def _gc_pause_s(worker: str) -> float:
    """Seconds the process has spent in garbage collections (``workers_gc_pause_seconds``, all generations)."""
    return sum(REGISTRY.get_sample_value("workers_gc_pause_seconds_sum", {"worker": worker, "generation": str(g)}) or 0.0
               for g in range(3))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", choices=[name for name, spec in registry.workloads().items() if spec.bench])
    parser.add_argument("--messages", type=int, default=60_000)
    parser.add_argument("--repeat", type=int, default=1, help="drains, each of a fresh backlog and group")
    parser.add_argument("--profile", help="write a cProfile file of the drains here and print its top functions")
    parser.add_argument("--top", type=int, default=30, help="functions printed with --profile")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    single_threaded_numpy()
    profile = cProfile.Profile() if args.profile else None
    reports = []
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    broker = None if external else EmbeddedBroker(port=free_port()).start()
    try:
        if broker is not None:
            os.environ["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap_servers
        os.environ.setdefault("WORKERS_LOG_LEVEL", "WARNING")
        for run in range(args.repeat):
            seed = int(time.time()) % 100_000 + run
            # topics of its own for each drain: the broker's fetch cost grows with what a topic already holds
            settings = load_settings(engine={"input_topic": f"drain-{seed}.in", "output_topic": f"drain-{seed}.out",
                                             "dlq_topic": f"drain-{seed}.dlq"})
            reports.append(drain(args.workload, settings, args.messages, seed, profile))
            if not args.json:
                print(f"drain {run + 1}: " + ", ".join(f"{k} {v}" for k, v in reports[-1].items()), flush=True)
    finally:
        if broker is not None:
            broker.stop()
    if profile is not None:
        profile.dump_stats(args.profile)
        if not args.json:
            _print_top(profile, args.top)
    if args.json:
        print(json.dumps({"workload": args.workload, "drains": reports}, indent=2))
    return 0


def _print_top(profile: cProfile.Profile, top: int, sort: str = "tottime") -> None:
    out = io.StringIO()
    pstats.Stats(profile, stream=out).strip_dirs().sort_stats(sort).print_stats(top)
    print(out.getvalue())


if __name__ == "__main__":
    sys.exit(main())
