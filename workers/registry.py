"""The workers this package serves, by name. Each entry builds a ready (loaded) handler."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from models import ARTIFACTS
from workers.engine.handler import Handler
from workers.settings import Settings

_CLASSES = {
    "tensor": "workers.tensor.handler:TensorHandler",
    "bot": "workers.bot.handler:BotHandler",
    "clicks": "workers.clicks.handler:ClicksHandler",
    "asr": "workers.asr.handler:AsrHandler",
}
"""Name -> handler class, imported only when asked for (a worker loads only its own dependencies)."""


def handler_class(name: str) -> type[Handler]:
    """The handler class (topics, partitions) without loading its model."""
    module, _, cls = _CLASSES[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def _tensor(model_dir: Path | None, settings: Settings) -> Handler:
    from workers.tensor.handler import DEFAULT_MODEL

    return handler_class("tensor")(model_dir or ARTIFACTS / DEFAULT_MODEL, settings.onnx)


def _with_settings(name: str) -> Callable[[Path | None, Settings], Handler]:
    """A handler built from (model directory, all settings); its committed model is ``models/artifacts/<name>``."""
    def build(model_dir: Path | None, settings: Settings) -> Handler:
        return handler_class(name)(model_dir or ARTIFACTS / name, settings)

    return build


WORKERS: dict[str, Callable[[Path | None, Settings], Handler]] = {
    "tensor": _tensor, "bot": _with_settings("bot"), "clicks": _with_settings("clicks"),
    "asr": _with_settings("asr"),
}
"""Name -> factory(model_dir or None for the committed default, settings)."""

DESCRIPTIONS = {
    "tensor": "any ONNX model, JSON tensors in and out (default: the digits classifier)",
    "bot": "customer-service chat: chat.messages -> chat.replies (intent, confidence, reply, handoff)",
    "clicks": "behaviour prediction: clicks.events -> clicks.predictions (next items, purchase probability)",
    "asr": "streaming speech recognition: asr.audio (PCM16 chunks) -> asr.transcripts (partials, finals)",
}


def build_handler(name: str, model_dir: str | Path | None, settings: Settings) -> Handler:
    if name not in WORKERS:
        raise SystemExit(f"unknown worker {name!r}; known: {', '.join(sorted(WORKERS))}")
    return WORKERS[name](Path(model_dir) if model_dir else None, settings)
