"""The chat bot's CLI verbs: train and predict. Heavy modules are imported inside each verb."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from workers.plugin import Command
from workers.settings import add_config_option, settings_from


def _configure_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", metavar="DIR", help="artifact directory (default: the committed one)")
    p.add_argument("--data", metavar="DIR", help="folder with banking77/ and clinc150/ (default ../shared/data/bot)")
    p.add_argument("--epochs", type=int, default=6, help="epochs (default 6)")


def train(args: argparse.Namespace) -> int:
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(message)s")
    from models import ARTIFACTS, bot

    out = Path(args.out) if args.out else ARTIFACTS / "bot"
    manifest = bot.train(Path(args.data) if args.data else bot.DEFAULT_DATA, out, epochs=args.epochs)
    print(json.dumps(manifest["metrics"]))
    return 0


def _configure_predict(p: argparse.ArgumentParser) -> None:
    add_config_option(p)
    p.add_argument("--input", metavar="FILE", required=True, help="one message per line (- for stdin)")
    p.add_argument("--model", metavar="DIR", help="model directory (default: the committed one)")
    p.add_argument("--conversation", action="store_true",
                   help="treat the lines as one conversation (fallbacks accumulate into a handoff)")


def predict(args: argparse.Namespace) -> int:
    """The bot's model and policy on a file: one JSON line per input line."""
    from models import ARTIFACTS
    from workers.bot.model import IntentModel
    from workers.bot.policy import Conversation
    from workers.bot.settings import BotSettings

    logging.basicConfig(level="WARNING")
    settings = settings_from(args)
    intents = IntentModel(args.model or ARTIFACTS / "bot", settings.onnx, settings.of(BotSettings).length_group)
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


COMMANDS = (
    Command("train", "the intent classifier (MiniLM-L6 fine-tuned on Banking77 + CLINC150 out-of-scope), exported "
            "to ONNX int8 with a parity check", train, _configure_train, target="bot"),
    Command("predict", "the bot's model and policy on a file of messages, without Kafka", predict, _configure_predict,
            target="bot"),
)
