"""The mic client's input level meter: what a speaker is told about a quiet or clipping microphone."""

from __future__ import annotations

import numpy as np
import pytest

from workers.asr.live import LevelMeter

RATE = 16000


def tone(dbfs: float, seconds: float = 0.1) -> np.ndarray:
    """A sine whose RMS is ``dbfs``."""
    t = np.arange(int(RATE * seconds)) / RATE
    return (np.sqrt(2) * 10 ** (dbfs / 20) * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_the_level_is_the_chunks_rms_in_dbfs() -> None:
    meter = LevelMeter(RATE)
    meter.update(tone(-30))
    assert meter.rms_dbfs == pytest.approx(-30, abs=0.1)
    assert meter.bar().startswith("[#####.....")  # -30 dBFS: half way from -60 to 0


def test_a_quiet_microphone_is_reported_once_after_the_window_and_cleared_by_speech() -> None:
    meter = LevelMeter(RATE, window_s=1.0)
    said = [meter.update(tone(-57)) for _ in range(15)]  # 1.5 s of a laptop mic at low gain
    warnings = [w for w in said if w]
    assert len(warnings) == 1 and "very quiet" in warnings[0] and said.index(warnings[0]) >= 9
    assert all(meter.update(tone(-25)) is None for _ in range(20))  # loud enough: nothing to say
    assert meter.warning is None


def test_clipping_is_reported() -> None:
    meter = LevelMeter(RATE)
    loud = np.clip(tone(0) * 2, -1, 1)
    assert "clipping" in (meter.update(loud) or "")
    assert meter.update(loud) is None  # said once while it lasts
