"""Wires one worker: model, topics, Kafka clients, metrics endpoint, engine; runs until SIGTERM."""

from __future__ import annotations

import importlib
import logging
import os
import socket
from pathlib import Path
from typing import Any

from workers.engine.engine import StreamEngine
from workers.engine.reload import ModelReloader
from workers.http import Health, MetricsServer
from workers import registry
from workers.registry import build_handler
from workers.settings import Settings
from workers.topics import Topics
from workers.transport.factory import BrokerUnavailable, ensure_topics, make_consumer, make_producer

log = logging.getLogger(__name__)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s",
    )
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))


def single_threaded_numpy() -> Any:
    """numpy's BLAS (OpenBLAS) spreads a matrix product of a few hundred rows over every core, and its
    threads spin between calls: in a worker's pre-processing that took cores from the batch loop and saved
    nothing (docs/notes/log.md). A worker's parallelism is ONNX Runtime's threads and ``--processes``,
    not numpy's."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")  # its restore_original_limits() undoes it (tests)


def serve(worker: str, settings: Settings, model_dir: str | Path | None = None) -> int:
    """Serve ``worker`` until SIGTERM/SIGINT; returns the process exit code."""
    configure_logging(settings.engine.log_level)
    single_threaded_numpy()
    log.info("kafka settings: %s", settings.kafka.redacted())
    model_dir = model_dir or settings.engine.model_dir
    spec = registry.get(worker)
    if spec.metrics:
        importlib.import_module(spec.metrics)  # the workload's own series, exported from the start
    handler = build_handler(worker, model_dir, settings)
    handler.warmup(settings.onnx.warmup_runs)
    reloader = ModelReloader(worker, handler.model.model_dir, handler.model.version,
                             lambda: build_handler(worker, handler.model.model_dir, settings),
                             settings.onnx.warmup_runs, settings.engine.model_poll_s)
    topics = Topics.of_handler(handler, settings.engine)
    health = Health()  # live (not ready) while waiting for the brokers: an orchestrator does not kill it
    server = MetricsServer(settings.engine.metrics_host, settings.engine.metrics_port, health).start()
    try:
        ensure_topics(settings.kafka, topics.to_create(), waiting=health.beat)
    except BrokerUnavailable as exc:
        log.error("%s; giving up (is KAFKA_BOOTSTRAP_SERVERS right, and the network open?)", exc)
        server.stop()
        return 2

    group_id = settings.engine.group_id or f"workers-{worker}"
    client_id = f"{worker}-{socket.gethostname()}-{os.getpid()}"
    consumer = make_consumer(settings.kafka, group_id, settings.engine.auto_offset_reset, client_id)
    producer = make_producer(settings.kafka, client_id)
    engine = StreamEngine(handler, settings.engine, consumer, producer, health, reloader)
    engine.install_signal_handlers()
    try:
        engine.run()
    finally:
        server.stop()
    log.info("%s stopped cleanly", worker)
    return 0
