"""The GPU playbook (deploy/gpu) runs where it can be tried without a GPU: the model-only timer on the CPU,
and the shell scripts parse. The CUDA half is for the first session lent a GPU (docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

GPU = REPO / "deploy" / "gpu"


def test_model_only_times_each_batch_on_each_available_provider() -> None:
    done = subprocess.run([sys.executable, str(GPU / "model_only.py"), "--seconds", "0.05", "--workloads", "clicks"],
                          capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(done.stdout)
    rows = [r for r in report["rows"] if r["provider"] == "cpu"]
    assert [r["batch_size"] for r in rows] == [1, 64, 512, 4096]
    assert all(r["session_on"] == "CPUExecutionProvider" and r["throughput"] > 0 for r in rows)
    cuda = [r for r in report["rows"] if r["provider"] == "cuda"]
    assert bool(cuda) == ("CUDAExecutionProvider" in report["available"])


@pytest.mark.parametrize("script", ["stage.sh", "measure.sh"])
def test_shell_scripts_parse(script: str) -> None:
    subprocess.run(["bash", "-n", str(GPU / script)], check=True)
