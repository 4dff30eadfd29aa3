from pathlib import Path

import pytest

from workers.settings import describe_settings, load_settings

REPO = Path(__file__).resolve().parents[2]


def test_precedence_arguments_over_environment_over_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "workers.yaml"
    config.write_text("kafka:\n  bootstrap_servers: yaml:1\n  client: confluent\nengine:\n  max_batch_size: 7\n")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "env:2")
    settings = load_settings(config, engine={"max_batch_size": 9})
    assert settings.kafka.bootstrap_servers == "env:2"
    assert settings.kafka.client == "confluent"
    assert settings.engine.max_batch_size == 9


def test_bad_values_and_unknown_sections_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("engine:\n  max_batch_size: 0\n")
    with pytest.raises(ValueError, match="max_batch_size"):
        load_settings(config)
    config.write_text("kafak:\n  x: 1\n")
    with pytest.raises(ValueError, match="unknown sections"):
        load_settings(config)


def test_secrets_never_appear_in_redacted_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "hunter2")
    settings = load_settings()
    assert "hunter2" not in str(settings.kafka.redacted()) and "hunter2" not in repr(settings.kafka)


def test_configuration_doc_is_generated_from_the_settings() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text()
    assert describe_settings() in doc, "docs/configuration.md is stale: regenerate with `workers settings`"
