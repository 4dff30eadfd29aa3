"""Typed, self-documenting settings (Faust/MLServer style).

Three sections, each with its own environment prefix:

* ``KAFKA_*``        -- how to reach the cluster (any real Kafka, or the embedded broker);
* ``WORKERS_*``      -- the streaming engine: batching, backpressure, commits, metrics endpoint;
* ``WORKERS_ONNX_*`` -- the ONNX Runtime session.

Precedence, highest first: explicit arguments (CLI flags) > environment > YAML file (``--config``,
sections ``kafka:``, ``engine:``, ``onnx:``) > defaults. ``workers settings`` prints them all.
"""

from __future__ import annotations

import contextvars
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

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


class _Section(BaseSettings):
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


class KafkaSettings(_Section):
    """Connection to the Kafka cluster. Defaults reach the embedded broker started by ``workers broker``."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", frozen=True, extra="forbid")
    yaml_section: ClassVar[str] = "kafka"

    bootstrap_servers: str = Field("127.0.0.1:9092", description="Comma-separated host:port list of brokers.")
    client: Literal["kafka-python", "confluent"] = Field(
        "confluent",
        description="Client library: confluent (librdkafka; idempotent producer; the clicks worker drained a "
        "backlog 1.9x as fast as with kafka-python) or kafka-python (pure Python, no native code).",
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


class EngineSettings(_Section):
    """The streaming engine shared by every worker."""

    model_config = SettingsConfigDict(env_prefix="WORKERS_", frozen=True, extra="forbid")
    yaml_section: ClassVar[str] = "engine"

    group_id: str | None = Field(None, description="Consumer group; default 'workers-<worker name>'.")
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
    max_in_flight: int = Field(
        10_000,
        ge=1,
        description="Messages consumed but not yet committed before partitions are paused (backpressure).",
    )
    poll_max_records: int = Field(500, ge=1, description="Records fetched per consumer poll.")
    commit_interval_s: float = Field(
        1.0, gt=0, description="How often acknowledged offsets are committed (also on rebalance and shutdown)."
    )
    shutdown_timeout_s: float = Field(30.0, gt=0, description="Drain budget after SIGTERM before giving up.")
    state_ttl_s: float = Field(1800.0, gt=0, description="Idle time after which per-key state is dropped.")
    max_keys: int = Field(100_000, ge=1, description="Most keys (streams, sessions, conversations) held in state.")
    model_dir: str | None = Field(None, description="Model directory to serve (`serve --model` overrides it); default: the committed model.")
    model_poll_s: float = Field(
        5.0, ge=0, description="How often the model directory's manifest.json is checked for a new version "
        "(hot reload: loaded and warmed aside, switched between batches); 0 turns it off.",
    )
    metrics_host: str = Field("127.0.0.1", description="Address of the /metrics and /v2/health endpoints.")
    metrics_port: int = Field(9400, ge=0, le=65535, description="Port of /metrics and /v2/health; 0 picks one.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")


class OnnxSettings(_Section):
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


class AsrSettings(_Section):
    """The speech recognition worker: endpointing and the bounds on each stream."""

    model_config = SettingsConfigDict(env_prefix="WORKERS_ASR_", frozen=True, extra="forbid")
    yaml_section: ClassVar[str] = "asr"

    endpoint_s: float = Field(
        0.8, gt=0, description="Silence (frames without speech, see speech_probability) after speech that ends "
        "a segment: a final is emitted "
        "and the next segment starts.")
    max_segment_s: float = Field(30.0, gt=0, description="A segment longer than this is finalised anyway.")
    speech_probability: float = Field(
        0.2, gt=0, le=1, description="Letter probability (1 - blank - space) at which a frame counts as speech "
        "although greedy decoding emits nothing there: such a segment ends in a final that the beam search "
        "decodes, and that is dropped if it finds no word. 1 only counts frames greedy decoding emits a letter in.")
    min_word_confidence: float = Field(
        0.0, ge=0, le=1, description="A final's word whose confidence (each word carries it: the mean of its "
        "characters' probability in the model's output) is below this is dropped from the final. 0 keeps every "
        "word. 0.05 halves the words made up in loud noise (85 -> 40 in 25 min of noise-only audio) and cost "
        "nothing on the development clips, but 5 of the unseen FSDD speaker's 391 right digits are that soft.")
    punctuate: bool = Field(
        True, description="Finals carry \"display\": their words with casing and punctuation (\"I was not at "
        "Dallas.\"), from the tagger shipped in the model's punctuation/ folder (none: no display). \"text\" "
        "and the words stay lower case, as WER is measured.")
    max_stream_s: float = Field(
        3600.0, gt=0, description="Audio one stream may send; the stream is then finalised and further "
        "chunks are dead-lettered (reason stream_ended) until it starts again at seq 0.")
    max_chunk_s: float = Field(2.0, gt=0, description="Longest audio chunk accepted (reason chunk_too_long).")
    beam: int = Field(
        32, ge=0, description="Beam width of the final's CTC beam search with the language models (partials "
        "are greedy); 0 makes finals greedy too. 64 takes held-out LJ WER from 0.424 to 0.407 (at 8 kHz 0.548 -> "
        "0.520) for 1.7x the search time: partials do not wait for it, finals come 0.3-0.6 s later at the median "
        "(16-48 streams on 2 cores).")
    lm_weight: float = Field(0.3, ge=0, description="Weight of the character LM's log-probability in the beam search.")
    lm_bonus: float = Field(1.0, description="Score added per character in the beam search (offsets the LMs' length penalty).")
    beam_prune: float = Field(
        -8.0, le=0, description="A frame's characters below this log-probability are not extended by the beam search.")
    phrase_prune: float = Field(
        -10.0, le=0, description="beam_prune for a final of a stream with a closed phrase list (no [unk]), whose "
        "search also drops search_margin: its few words are cheap to search, and a word's weak start (a "
        "fricative over a phone line, after a pause) must still be tried. The unseen FSDD speaker's digits after "
        "a 1 s pause, with the digit list: 0.534 -> 0.760 (README; the model before the pauses stage). The search costs more: a 30 s segment with the "
        "digit list 0.9 -> 2.4 s, with 1,000 phrases 0.6 -> 3.2 s (a short answer: tens of milliseconds).")
    word_weight: float = Field(
        0.4, ge=0, description="Weight of the word LM's log-probability, per finished word, when the model "
        "ships one (words.txt.gz); 0 searches with the character LM alone. Above 0.5 it starts to merge words.")
    unknown_word_penalty: float = Field(
        -5.0, le=0, description="Score added once to a word that leaves the word LM's vocabulary.")
    search_margin: float = Field(
        7.0, gt=0, description="Extensions scoring this far below the best prefix are not tried: 5x faster "
        "than no margin, for the same WER on the development clips.")
    search_processes: int = Field(
        1, ge=0, description="Processes running the finals' beam search, off the batch loop: a final is sent when "
        "its search is done, and the stream's later results wait behind it. 0 runs the search in the batch loop, "
        "where it delays every partial of that batch.")
    search_nice: int = Field(
        0, ge=0, le=19, description="Niceness added to the search processes: above 0 the batch loop (partials) "
        "gets the CPU first where both want it, and finals wait longer. 10 on 2 cores at 128 streams: partial p95 "
        "0.97-1.3 -> 0.34-0.59 s, final p95 3.0 -> 3.9-4.4 s (docs/benchmarks.md).")
    busy_beam: int = Field(
        8, ge=1, description="Beam width of a final searched while search_backlog searches are already waiting "
        "or running: less accurate (held-out LJ WER 0.539 against 0.424 at 32) and ~2.5x cheaper, so a burst of "
        "finals does not queue without bound.")
    search_backlog: int = Field(
        4, ge=1, description="Searches waiting or running in the search processes at which a new final is "
        "searched with busy_beam.")
    max_streams: int = Field(
        10_000, ge=1, description="Concurrent streams held; a new stream beyond it is dead-lettered "
        "(reason too_many_streams) instead of evicting a live one.")


class Settings(BaseModel):
    """All sections together."""

    model_config = {"frozen": True}

    kafka: KafkaSettings
    engine: EngineSettings
    onnx: OnnxSettings
    asr: AsrSettings


SECTIONS: dict[str, type[_Section]] = {"kafka": KafkaSettings, "engine": EngineSettings, "onnx": OnnxSettings, "asr": AsrSettings}


def load_settings(config_file: str | Path | None = None, **overrides: dict[str, Any]) -> Settings:
    """Build settings from (in order of precedence) ``overrides``, the environment, ``config_file``, defaults."""
    data: dict[str, Any] = {}
    if config_file:
        loaded = yaml.safe_load(Path(config_file).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{config_file}: expected a mapping with sections {sorted(SECTIONS)}")
        unknown = set(loaded) - set(SECTIONS)
        if unknown:
            raise ValueError(f"{config_file}: unknown sections {sorted(unknown)}; known: {sorted(SECTIONS)}")
        data = loaded
    token = _yaml_data.set(data)
    try:
        built = {name: cls(**overrides.get(name, {})) for name, cls in SECTIONS.items()}
    finally:
        _yaml_data.reset(token)
    return Settings(**built)


def describe_settings() -> str:
    """A Markdown table of every setting: environment variable, YAML key, default and meaning."""
    lines = []
    for section, cls in SECTIONS.items():
        prefix = cls.model_config.get("env_prefix", "")
        lines += [f"### `{section}:` ({cls.__doc__.strip().splitlines()[0]})", ""]
        lines += ["| environment variable | YAML key | default | meaning |", "|---|---|---|---|"]
        for name, info in cls.model_fields.items():
            default = info.get_default(call_default_factory=True)
            shown = "" if default is None else f"`{default}`"
            lines.append(f"| `{prefix}{name.upper()}` | `{section}.{name}` | {shown} | {info.description} |")
        lines.append("")
    return "\n".join(lines)
