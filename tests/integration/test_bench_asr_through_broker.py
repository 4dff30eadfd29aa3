"""`workers bench asr --json` end to end: the transport alone, then real-time streams through the real broker
to our worker and to both TensorFlow baselines, and ours as several processes in one consumer group."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from workers.asr.bench_streams import SAMPLES

SYSTEMS = ("ours", "baseline_predict", "baseline_tf_function")


@pytest.mark.timeout(600)
def test_bench_asr_climbs_stream_counts_for_every_system(tmp_path) -> None:
    plot = tmp_path / "asr.png"
    done = subprocess.run([sys.executable, "-m", "workers", "bench", "asr", "--streams", "1,2", "--seconds", "2",
                           "--target-ms", "60000", "--files", str(SAMPLES / "LJ001-0006.wav"), "--plot", str(plot),
                           "--json"], capture_output=True, text=True, timeout=580, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    for system in SYSTEMS:
        runs = report[system]["runs"]
        assert [r["streams"] for r in runs] == [1, 2], system  # a generous target: both counts run
        for r in runs:
            assert r["chunks_answered"] == r["chunks_sent"] > 0, (system, r)
            assert r["partial_latency_s"]["p95"] > 0 and r["rtfx"] > 0
        assert report[system]["max_streams"] == 2
    assert report["ours"]["runs"][-1]["batch_size_mean"] >= 1
    for r in report["ours"]["runs"]:  # every final of speech is searched, at the beam or the busy beam
        assert sum(r["final_searches_by_beam"].values()) >= (1 if r["finals"] else 0), r
    assert report["model_only"]["unit"] == "RTFX" and report["model_only"]["throughput"] > 0
    assert set(report["ratios"]) == {"baseline_predict", "baseline_tf_function"}
    (alone,) = report["transport"]["runs"]  # the transport's ceiling, on chunks like the streams'
    assert alone["unanswered"] == 0 and alone["answered"] > 0 and report["transport_ceiling"]["rtfx"] > 0
    assert plot.stat().st_size > 10_000


@pytest.mark.timeout(600)
def test_bench_asr_runs_ours_as_several_processes() -> None:
    done = subprocess.run([sys.executable, "-m", "workers", "bench", "asr", "--systems", "ours", "--processes", "2",
                           "--streams", "4", "--seconds", "2", "--target-ms", "60000",
                           "--files", str(SAMPLES / "LJ001-0006.wav"), "--json"],
                          capture_output=True, text=True, timeout=580, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["processes"] == 2 and set(report) >= {"ours", "model_only"}
    (run,) = report["ours"]["runs"]
    assert run["chunks_answered"] == run["chunks_sent"] > 0, run
    assert run["batch_size_mean"] >= 1  # the children's metrics, scraped on both ports and summed
