"""The workload's settings section: ``fraud:`` in YAML, ``WORKERS_FRAUD_*`` in the environment."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from workers.settings import SettingsSection


class FraudSettings(SettingsSection):
    """The fraud scoring example: when a transaction raises an alert, and the window of a card's velocity."""

    model_config = SettingsConfigDict(env_prefix="WORKERS_FRAUD_", frozen=True, extra="forbid")
    yaml_section: ClassVar[str] = "fraud"

    alert_threshold: float = Field(0.5, gt=0, lt=1, description="Fraud probability at or above which a result "
                                   "carries alert: true.")
    velocity_window_s: float = Field(600.0, gt=0, description="A card's transactions within this many seconds "
                                     "before the current one are its recent_transactions input.")
