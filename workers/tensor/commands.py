"""The tensor workload's CLI verb: train its default model (the digits classifier)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from workers.plugin import Command


def _configure_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="DIR", help="artifact directory (default: the committed one)")


def train_digits(args: argparse.Namespace) -> int:
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(message)s")
    from models import ARTIFACTS, digits

    manifest = digits.train(Path(args.out) if args.out else ARTIFACTS / "digits")
    print(json.dumps(manifest["metrics"]))
    return 0


COMMANDS = (
    Command("train", "the digits classifier the tensor worker serves by default (scikit-learn digits, Keras MLP)",
            train_digits, _configure_train, target="digits"),
)
