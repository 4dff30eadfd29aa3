"""Deployment files are valid (schema validators from PyPI) and agree with the code they deploy:
worker names, topics, consumer groups, partitions, health paths, settings names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from workers.registry import handler_class, workloads
from workers.settings import all_sections

WORKERS = workloads()
SECTIONS = all_sections()

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"


def setting_env_names() -> set[str]:
    return {(cls.model_config.get("env_prefix") or "") + name.upper() for cls in SECTIONS.values() for name in cls.model_fields}


def k8s_docs() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_compose_files_match_the_compose_specification() -> None:
    done = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
                           str(DEPLOY / "compose.yaml"), str(DEPLOY / "compose.gpu.yaml")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_runs_every_worker_with_real_settings() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"kafka", "prometheus", "grafana"} <= set(services)
    assert "KAFKA_PROCESS_ROLES" in services["kafka"]["environment"]  # KRaft, no ZooKeeper
    served = {s["command"][1] for s in services.values() if s.get("command", [None])[0] == "serve"}
    assert served == set(WORKERS)
    for name in served:
        assert set(services[name]["environment"]) <= setting_env_names()
        assert (REPO / services[name]["build"]["dockerfile"]).is_file()
    gpu = yaml.safe_load((DEPLOY / "compose.gpu.yaml").read_text())["services"]
    for service in gpu.values():
        assert service["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
        assert (REPO / service["build"]["dockerfile"]).is_file()
    targets = yaml.safe_load((DEPLOY / "prometheus" / "prometheus-compose.yml").read_text())["scrape_configs"][0]
    assert {t.split(":")[0] for t in targets["static_configs"][0]["targets"]} == served


def test_kubernetes_core_resources_validate_strictly() -> None:
    import kubernetes_validate

    core = [(p, d) for p, d in k8s_docs() if d["kind"] in {"Deployment", "Service", "ConfigMap"}]
    assert core
    for path, doc in core:
        kubernetes_validate.validate(doc, "1.30.0", strict=True)  # raises ValidationError with the path


def test_every_worker_has_a_deployment_probes_and_a_lag_scaler_bounded_by_partitions() -> None:
    docs = k8s_docs()
    deployments = {d["metadata"]["name"]: d for _, d in docs if d["kind"] == "Deployment"}
    scalers = {d["spec"]["scaleTargetRef"]["name"]: d for _, d in docs if d["kind"] == "ScaledObject"}
    services = {d["metadata"]["name"] for _, d in docs if d["kind"] == "Service"}
    config = next(d for _, d in docs if d["kind"] == "ConfigMap")
    assert set(config["data"]) <= setting_env_names()
    served = set()
    for name, deployment in deployments.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        worker = container["args"][1]
        served.add(worker)
        spec = handler_class(worker)
        assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
        assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert {e["name"] for e in container["env"]} <= setting_env_names()
        assert name in services and name in scalers
        scaler = scalers[name]["spec"]
        trigger = scaler["triggers"][0]
        assert trigger["type"] == "kafka" and trigger["metadata"]["topic"] == spec.input_topic
        assert trigger["metadata"]["consumerGroup"] == f"workers-{worker}"  # the default group of `workers serve`
        assert scaler["maxReplicaCount"] == spec.partitions
        if name.endswith("-gpu"):
            assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert served == set(WORKERS)
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert all((K8S / r).is_file() for r in kustomization["resources"])
    monitor = next(d for _, d in docs if d["kind"] == "PodMonitor")
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.gpu"])
def test_images_install_the_package_and_run_the_cli(dockerfile: str) -> None:
    text = (DEPLOY / dockerfile).read_text()
    assert "pip install ." in text and 'ENTRYPOINT ["workers"]' in text and "WORKERS_METRICS_HOST=0.0.0.0" in text
    for copied in ("pyproject.toml", "workers", "models", "export"):
        assert f"COPY {copied}" in text or f"COPY {copied} " in text
