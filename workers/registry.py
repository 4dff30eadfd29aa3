"""The workers this package serves, by name. Each entry builds a ready (loaded) handler."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from models import ARTIFACTS
from workers.engine.handler import Handler
from workers.settings import Settings


def _tensor(model_dir: Path | None, settings: Settings) -> Handler:
    from workers.tensor.handler import DEFAULT_MODEL, TensorHandler

    return TensorHandler(model_dir or ARTIFACTS / DEFAULT_MODEL, settings.onnx)


def _bot(model_dir: Path | None, settings: Settings) -> Handler:
    from workers.bot.handler import BotHandler

    return BotHandler(model_dir or ARTIFACTS / "bot", settings)


def _clicks(model_dir: Path | None, settings: Settings) -> Handler:
    from workers.clicks.handler import ClicksHandler

    return ClicksHandler(model_dir or ARTIFACTS / "clicks", settings)


WORKERS: dict[str, Callable[[Path | None, Settings], Handler]] = {"tensor": _tensor, "bot": _bot, "clicks": _clicks}
"""Name -> factory(model_dir or None for the committed default, settings)."""

DESCRIPTIONS = {
    "tensor": "any ONNX model, JSON tensors in and out (default: the digits classifier)",
    "bot": "customer-service chat: chat.messages -> chat.replies (intent, confidence, reply, handoff)",
    "clicks": "behaviour prediction: clicks.events -> clicks.predictions (next items, purchase probability)",
}


def handler_class(name: str) -> type[Handler]:
    """The handler class (topics, partitions) without loading its model."""
    if name == "bot":
        from workers.bot.handler import BotHandler

        return BotHandler
    if name == "clicks":
        from workers.clicks.handler import ClicksHandler

        return ClicksHandler
    from workers.tensor.handler import TensorHandler

    return TensorHandler


def build_handler(name: str, model_dir: str | Path | None, settings: Settings) -> Handler:
    if name not in WORKERS:
        raise SystemExit(f"unknown worker {name!r}; known: {', '.join(sorted(WORKERS))}")
    return WORKERS[name](Path(model_dir) if model_dir else None, settings)
