"""The clicks workload's CLI verbs: train, predict and data. Heavy modules are imported inside each verb."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from workers.plugin import Command
from workers.settings import add_config_option, settings_from


def _configure_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="DIR", help="artifact directory (default: the committed one)")
    p.add_argument("--events", metavar="FILE", required=True,
                   help="event log to train on (TSV/CSV/JSONL; see `workers data` for sample logs)")
    p.add_argument("--model", dest="kind", choices=["gru", "baseline"], default="gru",
                   help="the GRU session model (default) or the successor-count baseline")
    p.add_argument("--epochs", type=int, default=30, help="most epochs, with early stopping (default 30)")


def train(args: argparse.Namespace) -> int:
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(message)s")
    from models import ARTIFACTS, clicks

    out = Path(args.out) if args.out else ARTIFACTS / "clicks"
    if args.kind == "baseline":
        manifest = clicks.train_baseline(Path(args.events), out)
    else:
        manifest = clicks.train(Path(args.events), out, epochs=args.epochs)
    print(json.dumps(manifest["metrics"]))
    return 0


def _configure_predict(p: argparse.ArgumentParser) -> None:
    add_config_option(p)
    p.add_argument("--events", metavar="FILE", required=True, help="an event log (TSV/CSV/JSONL, see `workers data`)")
    p.add_argument("--k", type=int, default=20, help="how many next items")
    p.add_argument("--model", metavar="DIR", help="model directory (default: the committed one), or a baseline "
                   "directory from `workers train clicks --model baseline`")


def predict(args: argparse.Namespace) -> int:
    """Every event of every session but the last: the prediction from the events up to and including it."""
    from models import ARTIFACTS
    from workers.clicks.evaluate import replay
    from workers.clicks.events import read_events, sessions
    from workers.clicks.scorers import load_scorer

    logging.basicConfig(level="WARNING")
    scorer = load_scorer(args.model or ARTIFACTS / "clicks", settings_from(args).onnx)
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


def _configure_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--events", metavar="FILE", required=True, help="an event log (TSV/CSV/JSONL; YOOCHOOSE files as they are)")
    p.add_argument("--test", metavar="FILE", help="test sessions; default: the latest 10%% of --events by start time "
                   "(the split `workers train clicks` makes), the rest fitting the baselines")
    p.add_argument("--model", metavar="DIR", help="model directory (default: the committed one)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def evaluate(args: argparse.Namespace) -> int:
    """HR@20 / MRR@20 (and purchase AUC) of every baseline and of the served scorer, in one table."""
    from models import ARTIFACTS
    from models.clicks import evaluate_file
    from models.clicks_blend import format_table

    logging.basicConfig(level="WARNING")
    report = evaluate_file(Path(args.events), Path(args.model) if args.model else ARTIFACTS / "clicks",
                           Path(args.test) if args.test else None)
    print(json.dumps(report, indent=2) if args.json else format_table(report["table"], report["served"]))
    return 0


def _configure_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", choices=["synthetic-clicks", "synthetic-clicks-hard", "movielens-100k"],
                   help="synthetic-clicks-hard: higher-order paths, repeat visits, item cold start, popularity drift")
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument("--sessions", type=int, default=20000, help="synthetic-clicks: how many sessions")
    p.add_argument("--seed", type=int, default=0, help="synthetic-clicks: random seed")


def data(args: argparse.Namespace) -> int:
    """Sample event logs in the clicks log format."""
    from workers.clicks.events import write_events

    if args.dataset.startswith("synthetic-clicks"):
        from workers.clicks.synthetic import generate, generate_hard

        make = generate_hard if args.dataset.endswith("-hard") else generate
        n = write_events(make(args.sessions, seed=args.seed), args.out)
        print(json.dumps({"events": n, "sessions": args.sessions, "out": args.out}))
    else:
        from workers.clicks.public import fetch_movielens_100k

        print(json.dumps({**fetch_movielens_100k(args.out), "out": args.out}))
    return 0


COMMANDS = (
    Command("train", "the GRU session model (or the successor-count baseline) on an event log", train,
            _configure_train, target="clicks"),
    Command("predict", "next-item predictions for every event of an event log, without Kafka", predict,
            _configure_predict, target="clicks"),
    Command("evaluate", "every baseline and the served scorer on held-out sessions (HR@20, MRR@20, purchase AUC)",
            evaluate, _configure_evaluate, target="clicks"),
    Command("data", "write a sample event log: a synthetic shop (plain or hard), or MovieLens-100K from PyPI", data,
            _configure_data),
)
