"""`workers bench clicks --json` end to end: the real broker, the transport alone, our worker and both
TensorFlow baselines."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SYSTEMS = ("ours", "baseline_predict", "baseline_tf_function")


@pytest.mark.timeout(600)
def test_bench_clicks_reports_every_system_and_loses_nothing(tmp_path) -> None:
    plot = tmp_path / "cdf.png"
    # ours_memory_state (the changelog's cost) is left out for CI's time; its arithmetic: tests/workers/bench
    done = subprocess.run([sys.executable, "-m", "workers", "bench", "clicks", "--seconds", "2", "--rates", "20",
                           "--systems", "transport,ours,baseline_predict,baseline_tf_function",
                           "--window", "32", "--plot", str(plot), "--json"],
                          capture_output=True, text=True, timeout=580, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    for system in SYSTEMS:
        assert report[system]["throughput"] > 0 and report[system]["p99_s"] > 0
        phases = {run["phase"]: run for run in report[system]["runs"]}
        assert set(phases) == {"saturation", "rate 20"}
        for run in phases.values():
            assert run["sent"] > 0 and run["unanswered"] == 0 and run["duplicates"] == 0, run
            # the generator's own share (timed at its next poll, <= 10 ms late) is inside the latency
            assert 0 < run["input_ack_p99_s"] <= run["p99_s"] + 0.01, run
    assert report["ours"]["runs"][0]["batch_size_mean"] >= 1
    assert report["model_only"]["throughput"] > 0
    # the served scoring around the same call (state, blend, top-k) costs more than the call alone
    assert 0 < report["model_only"]["scoring_throughput"] < report["model_only"]["throughput"]
    assert report["model_only"]["scoring_end_to_end_fraction"] > report["model_only"]["end_to_end_fraction"]
    transport = report["transport"]["runs"]
    assert [run["phase"] for run in transport] == ["saturation"]  # the ceiling: no paced phases
    assert transport[0]["unanswered"] == 0 and transport[0]["duplicates"] == 0
    assert report["transport_ceiling"]["throughput"] == report["transport"]["throughput"] > 0
    assert set(report["ratios"]) == {"baseline_predict", "baseline_tf_function"}
    assert plot.stat().st_size > 10_000
