"""``workers``: the one command for everything a user does."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from typing import Any

from workers import registry
from workers.plugin import Command, WorkloadSpec, importable
from workers.settings import add_config_option, settings_from

DEVTOOLS = importable("workers.devtools")
"""The development tools (embedded broker, demo, bench) are installed; worker images leave them out."""
VERB_HELP = {
    "train": "train a model and export it to ONNX with a parity check",
    "predict": "run a worker's model (and policy) on a file, without Kafka",
    "evaluate": "measure a model on held-out data",
    "bench": "benchmark a worker against plain TensorFlow consumer loops through a broker",
    "replay": "load generator: concurrent real-time streams through the broker; latency report",
}
"""Help of the verbs that take a workload as their first argument (``workers train NAME``); a verb a
workload adds that is not here is shown with its own help."""
VERB_ALIASES = {"evaluate": ["eval"]}


def cmd_broker(args: argparse.Namespace) -> int:
    from workers.devtools.broker import EmbeddedBroker
    from workers.settings import KafkaSettings
    from workers.topics import Topics
    from workers.transport.factory import ensure_topics

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(message)s")
    broker = EmbeddedBroker(args.host, args.port, args.cert, args.key).start()
    # sigwait only reliably returns for blocked signals; block them after Tansu started (children inherit masks)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    topics: dict[str, int] = {}
    for name in registry.workloads():
        topics |= Topics.of_handler(registry.handler_class(name)).to_create()
    tls = {"security_protocol": "SSL", "ssl_cafile": args.cert} if args.cert else {}
    ensure_topics(KafkaSettings(bootstrap_servers=broker.bootstrap_servers, **tls), topics)
    print(f"topics: {', '.join(sorted(topics))}")
    print(f"broker ready on {broker.bootstrap_servers} (memory storage); Ctrl-C stops it", flush=True)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except KeyboardInterrupt:
        pass
    finally:
        broker.stop()
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from workers.serve import serve

    if args.processes > 1:
        from workers.supervise import serve_processes

        port = args.metrics_port if args.metrics_port is not None else settings_from(args).engine.metrics_port
        return serve_processes(args.worker, args.processes, port, args.config, args.model)
    engine: dict[str, Any] = {}
    if args.metrics_port is not None:
        engine["metrics_port"] = args.metrics_port
    return serve(args.worker, settings_from(args, engine=engine), args.model)


def cmd_demo(args: argparse.Namespace) -> int:
    from workers.devtools.demo import run_demo

    logging.basicConfig(level="WARNING")
    return run_demo(args.duration, args.rate, args.client, args.metrics_port)


def cmd_send(args: argparse.Namespace) -> int:
    from workers.client import send
    from workers.transport.records import OutgoingRecord

    kafka = settings_from(args).kafka
    source = sys.stdin if args.file == "-" else open(args.file)

    def records() -> Any:
        for line in source:
            line = line.rstrip("\n")
            if not line:
                continue
            key = None
            if args.key_field:
                try:
                    key = str(json.loads(line)[args.key_field]).encode()
                except (ValueError, KeyError, TypeError):
                    key = None  # the worker's decoder will dead-letter it with the reason
            yield OutgoingRecord(args.topic, line.encode(), key)

    print(f"{send(kafka, records())} records acknowledged on {args.topic}", file=sys.stderr)
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    from workers.client import read

    kafka = settings_from(args).kafka
    n = 0
    for record in read(kafka, args.topics, idle_timeout_s=args.idle_timeout, from_beginning=args.from_beginning):
        headers = {k: v.decode("utf-8", "replace") for k, v in record.headers if k.startswith("dlq.")}
        value = (record.value or b"").decode("utf-8", "replace")
        print(json.dumps({"topic": record.topic, "partition": record.partition, "offset": record.offset,
                          "key": record.key.decode("utf-8", "replace") if record.key else None,
                          **({"dlq": headers} if headers else {}), "value": value}), flush=True)
        n += 1
        if args.max and n >= args.max:
            break
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    from workers.settings import describe_settings

    if args.current:
        print(json.dumps(settings_from(args).dump(), indent=2))
    else:
        print(describe_settings())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workers",
        description="Streaming real-time inference workers: Kafka in, ONNX Runtime, Kafka out.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if DEVTOOLS:
        _add_devtools_commands(sub)
    specs = registry.workloads()
    workers_help = "; ".join(f"{name}: {spec.description}" for name, spec in specs.items())
    p = add_config_option(sub.add_parser("serve", help="run one worker until SIGTERM", description=f"Workers: {workers_help}."))
    p.add_argument("worker", choices=list(specs))
    p.add_argument("--model", metavar="DIR", help="model directory (model.onnx + manifest.json); default: the committed one")
    p.add_argument("--metrics-port", type=int, help="port of /metrics and /v2/health (default 9400, 0 = any); "
                   "with --processes, child i gets this + i")
    p.add_argument("--processes", type=int, default=1, metavar="N",
                   help="N worker processes in one consumer group, each with 1/N of the cores (restarted if one dies)")
    p.set_defaults(func=cmd_serve)

    p = add_config_option(sub.add_parser("send", help="produce JSON lines from a file (or -) to a topic"))
    p.add_argument("topic")
    p.add_argument("file")
    p.add_argument("--key-field", help="JSON field whose value becomes the record key")
    p.set_defaults(func=cmd_send)

    p = add_config_option(sub.add_parser("tail", help="print records of topics as JSON lines (DLQ reasons included)"))
    p.add_argument("topics", nargs="+")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--max", type=int, default=0, help="stop after this many records")
    p.add_argument("--idle-timeout", type=float, default=None, help="stop after this many seconds without records")
    p.set_defaults(func=cmd_tail)

    p = add_config_option(sub.add_parser("settings", help="document every setting (env var, YAML key, default)"))
    p.add_argument("--current", action="store_true", help="print the values in force instead (secrets masked)")
    p.set_defaults(func=cmd_settings)

    _add_workload_commands(sub, [command for spec in specs.values() for command in _commands_of(spec)])
    return parser


def _add_devtools_commands(sub: Any) -> None:
    p = sub.add_parser("broker", help="run the embedded Kafka-protocol broker (Tansu) and create the topics")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9092)
    p.add_argument("--cert", help="PEM certificate: serve TLS (clients: KAFKA_SECURITY_PROTOCOL=SSL, KAFKA_SSL_CAFILE)")
    p.add_argument("--key", help="PEM private key of --cert")
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("demo", help="embedded broker + workers + sample traffic; results and metrics on screen")
    p.add_argument("--duration", type=float, default=15.0, help="seconds of traffic; 0 runs until Ctrl-C")
    p.add_argument("--rate", type=float, default=20.0, help="requests per second")
    p.add_argument("--client", choices=["confluent", "kafka-python"], default="confluent",
                   help="Kafka client library of the workers and the demo (default: confluent, librdkafka)")
    p.add_argument("--metrics-port", type=int, default=9400, help="first worker's metrics port; the next gets +1 (0 = any)")
    p.set_defaults(func=cmd_demo)


def _commands_of(spec: WorkloadSpec) -> list[Command]:
    """A workload's own verbs, plus the generic ``bench`` for one that names a bench workload only; verbs
    whose modules this install lacks (a worker image without the development tools) are left out."""
    commands = list(spec.commands)
    if spec.bench and DEVTOOLS and not any(c.verb == "bench" and c.target == spec.name for c in commands):
        from workers.devtools.bench.command import command_for

        commands.append(command_for(spec))
    return [command for command in commands if command.available()]


def _add_workload_commands(sub: Any, commands: list[Command]) -> None:
    """``workers VERB TARGET`` for verbs with targets (one subparser each), ``workers VERB`` for the rest."""
    grouped: dict[str, list[Command]] = {}
    for command in commands:
        if command.target is None:
            p = sub.add_parser(command.verb, help=command.help, description=command.description or command.help)
            command.configure(p)
            p.set_defaults(func=command.run)
        else:
            grouped.setdefault(command.verb, []).append(command)
    for verb, targets in grouped.items():
        p = sub.add_parser(verb, help=VERB_HELP.get(verb, targets[0].help), aliases=VERB_ALIASES.get(verb, []))
        choices = p.add_subparsers(dest="target", required=True, metavar="NAME",
                                   title="what to " + verb, description=None)
        for command in targets:
            q = choices.add_parser(command.target, help=command.help, description=command.description or command.help)
            command.configure(q)
            q.set_defaults(func=command.run)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `workers predict ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
