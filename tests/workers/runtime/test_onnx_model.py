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
