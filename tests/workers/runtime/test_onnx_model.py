import logging

import numpy as np
import pytest

from models import ARTIFACTS
from workers.runtime.onnx_model import OnnxModel
from workers.settings import OnnxSettings


def test_cuda_is_preferred_and_the_fallback_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        model = OnnxModel(ARTIFACTS / "digits", OnnxSettings())
    assert model.provider in ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert any("loaded on" in r.message and model.provider in r.message for r in caplog.records)


def test_runs_are_timed_and_warmup_is_not_counted() -> None:
    model = OnnxModel(ARTIFACTS / "digits", OnnxSettings(providers=["CPUExecutionProvider"]))
    seen = []
    model.observer = lambda seconds, batch: seen.append(batch)
    model.warmup(3)
    assert seen == []
    out = model.run({"pixels": np.zeros((4, 64), np.float32)})
    assert out["probabilities"].shape == (4, 10) and seen == [4] and model.last_run_s > 0


@pytest.mark.skipif(
    "CUDAExecutionProvider" not in __import__("onnxruntime").get_available_providers(),
    reason="needs onnxruntime-gpu and a CUDA device",
)
def test_on_a_gpu_the_default_settings_run_on_cuda_and_match_the_cpu() -> None:
    import json

    samples = [json.loads(line) for line in (ARTIFACTS / "digits" / "samples.jsonl").read_text().splitlines()]
    x = np.array([s["inputs"]["pixels"] for s in samples], np.float32)
    gpu = OnnxModel(ARTIFACTS / "digits", OnnxSettings())
    cpu = OnnxModel(ARTIFACTS / "digits", OnnxSettings(providers=["CPUExecutionProvider"]))
    assert gpu.provider == "CUDAExecutionProvider"
    gpu.warmup(3)
    on_gpu, on_cpu = gpu.run({"pixels": x})["probabilities"], cpu.run({"pixels": x})["probabilities"]
    # The CUDA provider multiplies in TF32 on Ampere/Hopper by default (~1e-3 relative): same classes, close scores.
    assert (on_gpu.argmax(1) == on_cpu.argmax(1)).all()
    np.testing.assert_allclose(on_gpu, on_cpu, atol=5e-3)
