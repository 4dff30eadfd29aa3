"""`workers bench asr` arithmetic: which stream counts keep up, the summary, the table, and the TensorFlow
baseline's per-chunk step against the served path."""

from __future__ import annotations

import json

import pytest

from models import ARTIFACTS
from workers.asr.bench_streams import AsrBenchOptions, busy_share, early_passes, finals_by_shared_call, format_table, keeps_up, searches_by_beam, summarise


def run(system: str, streams: int, p95: float | None, answered: float = 1.0) -> dict:
    latency = {"count": 10, "avg": 0.05, "p50": 0.04, "p90": 0.08, "p95": p95, "p99": 0.2}
    return {"system": system, "streams": streams, "rtfx": streams * answered, "answered_fraction": answered,
            "partial_latency_s": latency, "final_latency_s": latency, "cpu_cores": 1.0, "peak_rss_mb": 200.0,
            "samples": {"partial_latency_s": [0.04] * 10}}


def test_a_stream_count_keeps_up_below_the_target_with_every_chunk_answered() -> None:
    assert keeps_up(run("ours", 8, 0.1), 0.3)
    assert not keeps_up(run("ours", 8, 0.31), 0.3)
    assert not keeps_up(run("ours", 8, 0.1, answered=0.9), 0.3)  # fast answers, but chunks were dropped
    assert not keeps_up(run("ours", 8, None), 0.3)


def test_summary_reports_the_largest_stream_count_under_the_target(monkeypatch) -> None:
    monkeypatch.setattr("workers.asr.bench_streams.asr_model_only", lambda batch, seconds, onnx, chunk_s: {
        "batch_size": batch, "median_batch_s": 0.01, "throughput": 64.0, "unit": "RTFX"})
    runs = {"ours": [run("ours", 1, 0.02), run("ours", 16, 0.1), run("ours", 32, 0.5)],
            "baseline_tf_function": [run("baseline_tf_function", 1, 0.03), run("baseline_tf_function", 16, 0.4)],
            "baseline_predict": [run("baseline_predict", 1, 2.0)]}
    report = summarise(runs, AsrBenchOptions(systems=tuple(runs)))
    assert report["ours"]["max_streams"] == 16 and report["ours"]["throughput"] == 16
    assert report["baseline_tf_function"]["max_streams"] == 1 and report["baseline_predict"]["max_streams"] == 0
    assert report["ratios"]["baseline_tf_function"]["max_streams_ratio"] == 16.0
    assert report["ratios"]["baseline_predict"]["max_streams_ratio"] is None
    assert report["model_only"]["end_to_end_fraction"] == 0.25
    assert "samples" not in report["ours"]["runs"][0]
    table = format_table(report)
    assert "ours: 16 real-time streams with p95 partial < 300 ms" in table and "25%" in table
    json.dumps(report)


def test_the_transport_alone_is_the_ceiling_in_chunks_and_in_real_time() -> None:
    transport = {"phase": "saturation", "offered_per_s": None, "throughput": 2000.0, "p50_s": 0.005, "p95_s": 0.01,
                 "p99_s": 0.02, "unanswered": 0, "cpu_cores": 0.5, "peak_rss_mb": 60.0, "latencies": [0.005]}
    report = summarise({"ours": [run("ours", 16, 0.1)]}, AsrBenchOptions(chunk_s=0.16), transport)
    assert report["transport_ceiling"] == {"chunks_per_s": 2000.0, "rtfx": 320.0, "end_to_end_fraction": 0.05}
    assert "latencies" not in report["transport"]["runs"][0]
    assert "2,000 chunks/s = RTFX 320; end to end is 5.0% of it" in format_table(report)


def test_finals_searched_with_the_busy_beam_are_counted_between_scrapes() -> None:
    name = "workers_asr_final_searches_total"
    before = {f"{name}{{beam=32}}": 10.0, f"{name}{{beam=8}}": 1.0, "workers_batch_size_count": 3.0}
    after = {f"{name}{{beam=32}}": 40.0, f"{name}{{beam=8}}": 11.0, f"{name}{{beam=0}}": 0.0,
             "workers_batch_size_count": 9.0}
    searches = searches_by_beam(before, after)
    assert searches == {"32": 30, "8": 10}  # a width that did not run is left out
    assert busy_share({"final_searches_by_beam": searches, "search_beam": 32}) == 0.25
    assert busy_share({"final_searches_by_beam": {"8": 5}, "search_beam": 32}) == 1.0  # every final was busy
    assert busy_share({"final_searches_by_beam": {}, "search_beam": 32}) is None and busy_share({}) is None
    report = {"seconds_per_run": 15, "chunk_s": 0.16, "clips": 1, "cpu_count": 2, "target_p95_s": 0.3,
              "ours": {"max_streams": 8, "runs": [run("ours", 8, 0.1) | {"final_searches_by_beam": searches,
                                                                         "search_beam": 32}]}}
    row = next(line for line in format_table(report).splitlines() if line.startswith("ours "))
    assert " 25% " in row


@pytest.mark.skipif(not (ARTIFACTS / "asr" / "keras_weights.npz").exists(), reason="no ASR Keras weights")
def test_the_tensorflow_baseline_transcribes_like_the_served_model_greedily() -> None:
    from workers.asr.audio import float_to_pcm16, read_audio
    from workers.asr.recognizer import AcousticModel, Recognizer
    from workers.asr.bench import asr_tf_step
    from workers.settings import OnnxSettings

    audio, rate = read_audio(ARTIFACTS.parent.parent / "workers" / "asr" / "samples" / "LJ001-0006.wav")
    audio = audio[: rate * 3]
    step = asr_tf_step("tf_function")
    n = int(0.16 * rate)
    chunks = [audio[i:i + n] for i in range(0, len(audio), n)]
    results = [json.loads(step(b"s", float_to_pcm16(c), {"seq": str(i).encode(), "sample_rate": str(rate).encode(),
                                                          "end": b"1" if i == len(chunks) - 1 else b"0"}))
               for i, c in enumerate(chunks)]
    assert [r["seq"] for r in results] == list(range(len(chunks))) and results[-1]["type"] == "final"
    # the served path without endpointing, tail, LM or level control (the loop has none): greedy text
    recognizer = Recognizer(AcousticModel(ARTIFACTS / "asr", OnnxSettings()), endpoint_s=1e9, level_control=False)
    stream = recognizer.new_stream(rate)
    for c in chunks[:-1]:
        partial = recognizer.accept([stream], [c], [False])[0][-1]
    assert results[-2]["text"] == partial.text and partial.text


def test_early_second_passes_are_counted_between_scrapes() -> None:
    name = "workers_asr_early_second_passes_total"
    before = {f"{name}{{outcome=used}}": 2.0}
    after = {f"{name}{{outcome=used}}": 9.0, f"{name}{{outcome=discarded}}": 3.0}
    assert early_passes(before, after) == {"used": 7, "discarded": 3}
    assert early_passes({}, {}) == {"used": 0, "discarded": 0}  # a worker with none


def test_finals_are_counted_by_how_many_shared_their_second_passs_call() -> None:
    name = "workers_asr_finals_by_shared_call_total"
    before = {f"{name}{{shared=1}}": 5.0}
    after = {f"{name}{{shared=1}}": 9.0, f"{name}{{shared=3}}": 6.0, f"{name}{{shared=2}}": 0.0}
    assert finals_by_shared_call(before, after) == {"1": 4, "3": 6}
