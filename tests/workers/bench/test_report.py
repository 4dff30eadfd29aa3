"""The benchmark's arithmetic: histogram deltas, percentiles, automatic rates, equal-load pairing, table."""

from __future__ import annotations

import numpy as np

from workers.devtools.bench.probe import histogram_delta, percentiles
from workers.devtools.bench.runner import BenchOptions, _same_rate, automatic_rates, format_table, summarise
from workers.devtools.bench.workloads import BenchWorkload


def test_histogram_delta_counts_only_what_happened_between_scrapes() -> None:
    before = {"h_count": 10, "h_sum": 20.0, "h_bucket|1.0": 4, "h_bucket|8.0": 10, "h_bucket|+Inf": 10}
    after = {"h_count": 16, "h_sum": 50.0, "h_bucket|1.0": 5, "h_bucket|8.0": 16, "h_bucket|+Inf": 16}
    delta = histogram_delta(before, after, "h")
    assert delta == {"count": 6, "mean": 5.0, "buckets": {"1.0": 1, "8.0": 5}}


def test_percentiles_and_empty() -> None:
    p = percentiles(np.arange(1, 101, dtype=float) / 1000)
    assert p["p50_s"] == 0.0505 and p["p99_s"] == 0.099
    assert percentiles(np.array([]))["p99_s"] is None


def test_automatic_rates_compare_at_each_baselines_half_capacity() -> None:
    rates = automatic_rates({"ours": 1000.0, "baseline_predict": 20.0, "baseline_tf_function": 300.0})
    assert rates["ours"] == [10.0, 150.0, 500.0]
    assert rates["baseline_tf_function"] == [10.0, 150.0]
    assert rates["baseline_predict"] == [10.0]  # 150/s is far beyond its 20/s: not run


def test_same_rate_picks_the_highest_shared_load() -> None:
    ours = [{"offered_per_s": None, "p99_s": 1.0}, {"offered_per_s": 10.0, "p99_s": 0.02}, {"offered_per_s": 150.0, "p99_s": 0.03}]
    theirs = [{"offered_per_s": None, "p99_s": 9.0}, {"offered_per_s": 10.0, "p99_s": 0.05}]
    assert _same_rate(ours, theirs) == {"equal_load_per_s": 10.0, "equal_load_p99_ours_s": 0.02,
                                        "equal_load_p99_theirs_s": 0.05}


def test_table_names_every_run_and_the_ratios() -> None:
    run = {"phase": "saturation", "offered_per_s": None, "throughput": 500.0, "p50_s": 0.01, "p95_s": 0.02,
           "p99_s": 0.03, "unanswered": 0, "batch_size_mean": 12.0, "inference_s_mean_per_batch": 0.002,
           "cpu_cores": 1.0, "peak_rss_mb": 100.0}
    report = {"workload": "clicks", "seconds_per_phase": 5, "saturation_window": 256, "cpu_count": 2,
              "ours": {"runs": [run]}, "transport": {"runs": [run | {"throughput": 2000.0}]},
              "transport_ceiling": {"throughput": 2000.0, "end_to_end_fraction": 0.25},
              "model_only": {"batch_size": 12, "throughput": 1000.0, "end_to_end_fraction": 0.5},
              "ratios": {"baseline_tf_function": {"throughput_ratio": 5.0, "saturation_p99_ours_s": 0.03,
                                                  "saturation_p99_theirs_s": 0.3}}}
    table = format_table(report)
    assert "ours" in table and "500.0" in table and "50%" in table and "5x throughput" in table
    assert "transport only (consume + produce, no model): 2,000.0 msg/s; end to end is 25% of it" in table


def test_the_state_changelog_cost_is_ours_beside_ours_with_memory_only_state() -> None:
    def run(throughput: float, p99: float) -> dict:
        return {"phase": "saturation", "offered_per_s": None, "throughput": throughput, "p50_s": 0.01, "p95_s": 0.02,
                "p99_s": p99, "unanswered": 0, "batch_size_mean": 8.0, "inference_s_mean_per_batch": 0.001,
                "cpu_cores": 1.0, "peak_rss_mb": 100.0}

    workload = BenchWorkload("clicks", messages=lambda n, seed: [], tf_step=lambda mode: None,  # type: ignore[arg-type, return-value]
                             model_only=lambda batch, seconds, onnx: {"batch_size": batch, "throughput": 10_000.0})
    results = {"ours": {"runs": [run(800.0, 0.09)]}, "ours_memory_state": {"runs": [run(1000.0, 0.07)]}}
    report = summarise(workload, results, BenchOptions(systems=("ours", "ours_memory_state")))
    assert report["changelog_cost"] == {"throughput_memory_only": 1000.0, "throughput_fraction": 0.8,
                                        "saturation_p99_memory_only_s": 0.07}
    table = format_table(report)
    assert "ours_memory_state" in table
    assert "state changelog: ours 80% of the throughput with state in memory only (1,000.0 msg/s" in table


def test_a_workloads_scoring_around_the_model_call_is_a_second_model_only_figure() -> None:
    run = {"phase": "saturation", "offered_per_s": None, "throughput": 900.0, "p50_s": 0.01, "p95_s": 0.02,
           "p99_s": 0.03, "unanswered": 0, "batch_size_mean": 30.0, "inference_s_mean_per_batch": 0.001,
           "cpu_cores": 1.0, "peak_rss_mb": 100.0}
    workload = BenchWorkload("clicks", messages=lambda n, seed: [], tf_step=lambda mode: None,  # type: ignore[arg-type, return-value]
                             model_only=lambda batch, seconds, onnx: {"batch_size": batch, "throughput": 9_000.0,
                                                                      "scoring_throughput": 3_000.0})
    report = summarise(workload, {"ours": {"runs": [run]}}, BenchOptions(systems=("ours",)))
    assert report["model_only"]["end_to_end_fraction"] == 0.1
    assert report["model_only"]["scoring_end_to_end_fraction"] == 0.3
    table = format_table(report)
    assert "model only (ONNX Runtime, batch 30): 9,000.0 msg/s; end to end is 10% of it" in table
    assert "scoring around the call (same batch, in process): 3,000.0 msg/s; end to end is 30% of it" in table


def test_clicks_model_only_times_the_served_scoring_beside_onnx_runtime_alone() -> None:
    from workers.clicks.bench import clicks_model_only
    from workers.settings import OnnxSettings

    figures = clicks_model_only(8, 0.2, OnnxSettings())
    assert figures["batch_size"] == 8 and figures["throughput"] > 0
    # the blend and the top-k over the catalogue cost more than the recurrent step alone
    assert 0 < figures["scoring_throughput"] < figures["throughput"]
