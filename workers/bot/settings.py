"""The chat bot's settings section (``bot:`` in YAML, ``WORKERS_BOT_*`` in the environment)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from workers.settings import SettingsSection

DEFAULT_LENGTH_GROUP = 8


class BotSettings(SettingsSection):
    """The customer-service chat bot: how a micro-batch is split into model calls."""

    model_config = SettingsConfigDict(env_prefix="WORKERS_BOT_", frozen=True, extra="forbid")
    yaml_section: ClassVar[str] = "bot"

    length_group: int = Field(
        DEFAULT_LENGTH_GROUP, ge=0, description="Most texts per model call: a micro-batch (engine.max_batch_size) "
        "is sorted by token length and cut into groups of this size, so each call pads to a similar length "
        "instead of the batch's longest text. 0 runs the whole batch in one call (fixed-shape accelerators).")
