"""What the core finds through this package's ``workers.workloads`` entry point."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from fraud_scoring.settings import FraudSettings
from workers.plugin import Command, WorkloadSpec

MODEL = Path(__file__).parent / "model"


def _configure_train(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", metavar="DIR", help=f"artifact directory (default: {MODEL})")
    parser.add_argument("--epochs", type=int, default=12)


def _train(args: argparse.Namespace) -> int:
    logging.basicConfig(level="INFO")
    from fraud_scoring.train import train

    print(json.dumps(train(Path(args.out) if args.out else MODEL, epochs=args.epochs)["metrics"]))
    return 0


SPEC = WorkloadSpec(
    name="fraud",
    description="card fraud scoring (example plug-in): payments.transactions -> payments.fraud_scores",
    handler="fraud_scoring.handler:FraudHandler",
    default_model=MODEL,
    settings=FraudSettings,
    metrics="fraud_scoring.metrics",
    commands=(Command("train", "the fraud model on generated transactions (TensorFlow -> ONNX, parity-checked)",
                      _train, _configure_train, target="fraud"),),
    demo="fraud_scoring.demo:transactions",
)
