"""Wires one worker: model, topics, Kafka clients, metrics endpoint, engine; runs until SIGTERM."""

from __future__ import annotations

import importlib
import logging
import os
import socket
from pathlib import Path
from typing import Any

from workers.engine.changelog import Changelog, changelog_config, changelog_topic
from workers.engine.engine import StreamEngine
from workers.engine.handler import Handler, StatefulHandler
from workers.engine.reload import ModelReloader
from workers.garbage_collection import tune_garbage_collection
from workers.http import Health, MetricsServer
from workers import registry
from workers.registry import build_handler
from workers.settings import Settings
from workers.topics import Topics
from workers.transport.factory import BrokerUnavailable, ensure_topics, make_consumer, make_partition_reader, make_producer

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


def state_changelog(handler: Handler[Any], settings: Settings, group_id: str, client_id: str) -> Changelog | None:
    """The changelog backing ``handler``'s per-key state, or None: no state, no codec, or turned off."""
    if not (settings.engine.state_changelog and isinstance(handler, StatefulHandler) and handler.state_codec):
        return None
    topic = settings.engine.state_topic or changelog_topic(group_id, handler.name)
    return Changelog(topic, handler.name, lambda: make_partition_reader(settings.kafka, f"{client_id}-restore"))


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
    group_id = settings.engine.group_id or f"workers-{worker}"
    client_id = f"{worker}-{socket.gethostname()}-{os.getpid()}"
    changelog = state_changelog(handler, settings, group_id, client_id)
    health = Health()  # live (not ready) while waiting for the brokers: an orchestrator does not kill it
    server = MetricsServer(settings.engine.metrics_host, settings.engine.metrics_port, health).start()
    try:
        to_create, configs, partitioned_like = topics.to_create(), {}, {}
        if changelog is not None:  # beside the input, with as many partitions
            to_create[changelog.topic] = topics.partitions
            configs[changelog.topic] = changelog_config(settings.engine.state_ttl_s)
            partitioned_like[changelog.topic] = topics.input
        ensure_topics(settings.kafka, to_create, waiting=health.beat, configs=configs, partitioned_like=partitioned_like)
    except BrokerUnavailable as exc:
        log.error("%s; giving up (is KAFKA_BOOTSTRAP_SERVERS right, and the network open?)", exc)
        server.stop()
        return 2

    consumer = make_consumer(settings.kafka, group_id, settings.engine.auto_offset_reset, client_id,
                             settings.engine.group_instance_id)
    producer = make_producer(settings.kafka, client_id)
    engine = StreamEngine(handler, settings.engine, consumer, producer, health, reloader, changelog)
    engine.install_signal_handlers()
    tune_garbage_collection(settings.engine.gc_young_threshold, worker)
    try:
        engine.run()
    finally:
        server.stop()
    log.info("%s stopped cleanly", worker)
    return 0
