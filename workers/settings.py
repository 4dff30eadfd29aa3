"""Typed, self-documenting settings (Faust/MLServer style).

Three core sections, each with its own environment prefix:

* ``KAFKA_*``        -- how to reach the cluster (any real Kafka, or the embedded broker);
* ``WORKERS_*``      -- the streaming engine: batching, backpressure, commits, metrics endpoint;
* ``WORKERS_ONNX_*`` -- the ONNX Runtime session;

and one section per installed workload that declares settings (``WORKERS_<NAME>_*``).

Precedence, highest first: explicit arguments (CLI flags) > environment > YAML file (``--config``,
sections ``kafka:``, ``engine:``, ``onnx:``, and the workloads') > defaults. ``workers settings`` prints them all.
"""

from __future__ import annotations

import argparse
import contextvars
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

SectionT = TypeVar("SectionT", bound="SettingsSection")
_yaml_data: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("workers_yaml", default={})


class _YamlSectionSource(PydanticBaseSettingsSource):
    """Lowest-priority source: one section of the YAML file given to :func:`load_settings`."""

    def __init__(self, settings_cls: type[BaseSettings], section: str) -> None:
        super().__init__(settings_cls)
        self.section = section

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        data = _yaml_data.get().get(self.section) or {}
        if not isinstance(data, dict):
            raise ValueError(f"config section {self.section!r} must be a mapping")
        return data


class SettingsSection(BaseSettings):
    """One section: its own environment prefix (``model_config``) and YAML key (``yaml_section``).
    A workload's section subclasses it, e.g. ``env_prefix="WORKERS_CHURN_"``, ``yaml_section = "churn"``."""

    yaml_section: ClassVar[str]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSectionSource(settings_cls, cls.yaml_section))


class KafkaSettings(SettingsSection):
    """Connection to the Kafka cluster. Defaults reach the embedded broker started by ``workers broker``."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", frozen=True, extra="forbid")
    yaml_section: ClassVar[str] = "kafka"

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Comma-separated host:port list of brokers.")
    client: Literal["kafka-python", "confluent"] = Field(
        "confluent",
        description="Client library: confluent (librdkafka: idempotent producer, the faster of the two, "
        "docs/benchmarks.md) or kafka-python (pure Python, no native code).",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security.protocol."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism when security_protocol is SASL_*."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password (never logged).")
    ssl_cafile: str | None = Field(None, description="PEM file of CA certificates to verify the brokers.")
    ssl_certfile: str | None = Field(None, description="PEM client certificate for mutual TLS.")
    ssl_keyfile: str | None = Field(None, description="PEM private key of the client certificate.")
    ssl_check_hostname: bool = Field(True, description="Verify the broker host name against its certificate.")
    fetch_max_wait_ms: int = Field(
        10,
        ge=0,
        description="How long the broker may hold a fetch waiting for data. The embedded broker holds it the "
        "whole time even when records arrive, so the clients' 500 ms default turned into latency.",
    )
    session_timeout_ms: int = Field(10_000, ge=1000, description="Consumer-group session timeout.")
    request_timeout_ms: int = Field(30_000, ge=1000, description="Broker request timeout.")
    startup_timeout_s: float = Field(
        300.0, ge=0, description="How long a starting worker waits for the brokers (retrying with backoff) "
        "before it exits with an error; 0 waits forever.",
    )

    def redacted(self) -> dict[str, Any]:
        """Settings safe to log: secrets stay masked."""
        return self.model_dump(mode="json") | {"sasl_password": "**********" if self.sasl_password else None}


class EngineSettings(SettingsSection):
    """The streaming engine shared by every worker."""

    model_config = SettingsConfigDict(env_prefix="WORKERS_", frozen=True, extra="forbid")
    yaml_section: ClassVar[str] = "engine"

    group_id: str | None = Field(None, description="Consumer group; default 'workers-<worker name>'.")
    group_instance_id: str | None = Field(
        None, description="Static group membership (KIP-345; confluent client only): an id this worker keeps across "
        "restarts (a StatefulSet pod name; `serve --processes N` appends '-<child index>'). A restarted worker gets its "
        "partitions back without waiting out the session timeout: after a kill -9 on the embedded broker, 6.0 s instead "
        "of 11.1 s (session timeout 6 s). The price: a stopped worker does not leave the group, so its partitions move "
        "only after the session timeout. Off by default.",
    )
    input_topic: str | None = Field(None, description="Override the worker's input topic.")
    output_topic: str | None = Field(None, description="Override the worker's output topic.")
    dlq_topic: str | None = Field(None, description="Override the dead-letter topic; default '<input topic>.dlq'.")
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="Where a new consumer group starts reading."
    )
    max_batch_size: int = Field(64, ge=1, description="Largest micro-batch sent to the model in one call.")
    max_batch_wait_ms: float = Field(
        0.0, ge=0, description="How long the oldest queued message may wait for a fuller batch. 0 (greedy): a "
        "batch is whatever is queued when the model is free; under load batches fill by themselves while the "
        "previous one runs. Raise it (2-10) where one call costs about the same for 1 or 64 inputs (GPUs).",
    )
    batch_latency_target_ms: float = Field(
        0.0, ge=0, description="Adaptive batching: a target for a message's time in the worker (queue wait and its "
        "batch). Above 0 the worker sets the batch size (up to max_batch_size) and the wait itself from measured batch "
        "times: a batch takes at most half the target, and what the largest batch leaves is spent waiting for fuller "
        "batches. 0: the fixed max_batch_size and max_batch_wait_ms.",
    )
    max_in_flight: int = Field(
        10_000,
        ge=1,
        description="Messages consumed but not yet committed before partitions are paused (backpressure).",
    )
    poll_max_records: int = Field(500, ge=1, description="Records fetched per consumer poll.")
    gc_young_threshold: int = Field(
        50_000, ge=0, description="Python's young-generation garbage collection threshold, set once the model is "
        "loaded and warm (everything loaded until then is frozen out of later collections). Python's 700 made a "
        "worker with a cheap model spend 3-8 us a message in collections, with a 40 ms full collection every few thousand "
        "messages (docs/benchmarks.md); 0 keeps Python's defaults.",
    )
    commit_interval_s: float = Field(
        1.0, gt=0, description="How often acknowledged offsets are committed (also on rebalance and shutdown)."
    )
    shutdown_timeout_s: float = Field(30.0, gt=0, description="Drain budget after SIGTERM before giving up.")
    state_ttl_s: float = Field(1800.0, gt=0, description="Idle time after which per-key state is dropped.")
    max_keys: int = Field(100_000, ge=1, description="Most keys (streams, sessions, conversations) held in state.")
    state_changelog: bool = Field(
        True, description="Back per-key state with a changelog topic and restore it when partitions are assigned "
        "(after a crash, a restart or a rebalance), for workers whose state has a codec. Off: state is memory-only.",
    )
    state_topic: str | None = Field(None, description="Override the changelog topic; default '<group id>-<worker>-state'.")
    model_dir: str | None = Field(None, description="Model directory to serve (`serve --model` overrides it); default: the committed model.")
    model_poll_s: float = Field(
        5.0, ge=0, description="How often the model directory's manifest.json is checked for a new version "
        "(hot reload: loaded and warmed aside, switched between batches); 0 turns it off.",
    )
    metrics_host: str = Field("127.0.0.1", description="Address of the /metrics and /v2/health endpoints.")
    metrics_port: int = Field(9400, ge=0, le=65535, description="Port of /metrics and /v2/health; 0 picks one.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")


class OnnxSettings(SettingsSection):
    """The ONNX Runtime session."""

    model_config = SettingsConfigDict(env_prefix="WORKERS_ONNX_", frozen=True, extra="forbid")
    yaml_section: ClassVar[str] = "onnx"

    providers: list[str] = Field(
        ["CUDAExecutionProvider", "CPUExecutionProvider"],
        description="Execution providers in order of preference; unavailable ones are skipped (logged).",
    )
    intra_op_num_threads: int = Field(0, ge=0, description="Threads inside one operator; 0 lets ORT decide.")
    inter_op_num_threads: int = Field(0, ge=0, description="Threads across operators; 0 lets ORT decide.")
    allow_spinning: bool = Field(
        False,
        description="Let ORT's worker threads spin-wait for the next call. Spinning saves microseconds per call "
        "but burns CPU between calls; on hosts shared with the broker or other workers it cost throughput.",
    )
    graph_optimization_level: Literal["disable", "basic", "extended", "all"] = Field(
        "all", description="ORT graph optimisations."
    )
    warmup_runs: int = Field(3, ge=0, description="Inference calls made at start-up, before the worker is ready.")


@dataclass(frozen=True)
class Settings:
    """All sections together: the three core ones and one per installed workload that has settings."""

    kafka: KafkaSettings
    engine: EngineSettings
    onnx: OnnxSettings
    workloads: Mapping[str, SettingsSection] = field(default_factory=dict)

    def of(self, cls: type[SectionT]) -> SectionT:
        """A workload's section by its class (defaults when its YAML section was not loaded)."""
        found = self.workloads.get(cls.yaml_section)
        return found if isinstance(found, cls) else cls()

    def dump(self) -> dict[str, Any]:
        """Every value in force, secrets masked."""
        return {"kafka": self.kafka.redacted(), "engine": self.engine.model_dump(), "onnx": self.onnx.model_dump(),
                **{name: section.model_dump(mode="json") for name, section in self.workloads.items()}}


CORE_SECTIONS: dict[str, type[SettingsSection]] = {"kafka": KafkaSettings, "engine": EngineSettings, "onnx": OnnxSettings}


def all_sections() -> dict[str, type[SettingsSection]]:
    """The core sections, then each installed workload's, by YAML key."""
    from workers.registry import workloads

    found = dict(CORE_SECTIONS)
    for spec in workloads().values():
        if spec.settings is not None:
            section = spec.settings.yaml_section
            if section in found:
                raise ValueError(f"workload {spec.name!r}: settings section {section!r} is taken")
            found[section] = spec.settings
    return found


def load_settings(config_file: str | Path | None = None, **overrides: dict[str, Any]) -> Settings:
    """Build settings from (in order of precedence) ``overrides``, the environment, ``config_file``, defaults."""
    sections = all_sections()
    data: dict[str, Any] = {}
    if config_file:
        loaded = yaml.safe_load(Path(config_file).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{config_file}: expected a mapping with sections {sorted(sections)}")
        unknown = set(loaded) - set(sections)
        if unknown:
            raise ValueError(f"{config_file}: unknown sections {sorted(unknown)}; known: {sorted(sections)}")
        data = loaded
    token = _yaml_data.set(data)
    try:
        built = {name: cls(**overrides.get(name, {})) for name, cls in sections.items()}
    finally:
        _yaml_data.reset(token)
    core = {name: built.pop(name) for name in CORE_SECTIONS}
    return Settings(**core, workloads=built)


def describe_settings() -> str:
    """A Markdown table of every setting: environment variable, YAML key, default and meaning."""
    lines = []
    for section, cls in all_sections().items():
        prefix = cls.model_config.get("env_prefix", "")
        lines += [f"### `{section}:` ({cls.__doc__.strip().splitlines()[0]})", ""]
        lines += ["| environment variable | YAML key | default | meaning |", "|---|---|---|---|"]
        for name, info in cls.model_fields.items():
            default = info.get_default(call_default_factory=True)
            shown = "" if default is None else f"`{default}`"
            lines.append(f"| `{prefix}{name.upper()}` | `{section}.{name}` | {shown} | {info.description} |")
        lines.append("")
    return "\n".join(lines)


def add_config_option(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--config FILE``: the YAML settings file a command reads (see ``workers settings``)."""
    parser.add_argument("--config", metavar="FILE", help="YAML file with kafka:/engine:/onnx: and workload sections "
                        "(environment variables override it; see `workers settings`)")
    return parser


def settings_from(args: argparse.Namespace, **overrides: dict[str, Any]) -> Settings:
    """The settings in force for a command: ``--config``, the environment, then ``overrides``."""
    return load_settings(getattr(args, "config", None), **overrides)
