"""``workers bench asr``: concurrent real-time speech streams through the broker, after NVIDIA Riva's method.

For each system (ours = ``workers serve asr``; the two TensorFlow consumer loops of
:func:`workers.asr.bench.asr_tf_step`) and each stream count N of a ladder, a fresh process on fresh
topics gets N streams that each send a chunk every ``chunk_s`` (real time, cycling through the clips) for
``seconds``. Measured: partial latency (chunk produced -> its partial read back) and final latency
(avg/p50/p90/p95/p99), throughput as RTFX (audio seconds answered per wall second; N when it keeps up),
CPU and RSS of the system, and for ours the batch sizes and inference time from its metrics.

A system's ladder stops at the first N whose p95 partial latency reaches ``target_p95_s`` (or that leaves
chunks unanswered): the report's ``max_streams`` is the largest N below the target.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workers.asr.bench import asr_model_only
from workers.asr.live import replay
from workers.asr.settings import AsrSettings
from workers.devtools.bench.probe import ProcessSampler, histogram_delta
from workers.devtools.bench.runner import (
    SYSTEMS,
    BenchOptions,
    SystemUnderTest,
    bench_broker,
    partitions_for,
    run_phase,
    save_figure,
    worker_settings,
)
from workers.devtools.bench.workloads import TRANSPORT
from workers.settings import KafkaSettings, OnnxSettings
from workers.topics import Topics
from workers.transport.factory import ensure_topics, make_producer

log = logging.getLogger(__name__)
SAMPLES = Path(__file__).resolve().parent / "samples"


def default_clips() -> list[str]:
    """Held-out LJ Speech clips when ``../shared`` is beside the checkout, else the bundled samples."""
    from models.asr_data import lj_clips

    try:
        return [clip.path for clip in lj_clips()[1]]
    except OSError:
        return [str(p) for p in sorted(SAMPLES.glob("*.wav"))]


@dataclass
class AsrBenchOptions:
    streams: list[int] = field(default_factory=lambda: [1, 8, 16, 32, 48, 64, 80, 96, 128])
    seconds: float = 15.0  # as `workers bench --seconds`
    chunk_s: float = 0.16
    pause_s: float = 0.0  # silence after each clip before its stream ends (finals at the endpoint)
    target_p95_s: float = 0.3
    systems: tuple[str, ...] = (TRANSPORT, *SYSTEMS)
    files: list[str] = field(default_factory=list)  # empty: default_clips()
    bootstrap: str | None = None  # None: an embedded broker
    plot: Path | None = None
    worker_env: dict[str, str] = field(default_factory=dict)
    processes: int = 1  # ours as `workers serve asr --processes N` (topics get max(4, N) partitions)


def run_streams(system: str, streams: int, options: AsrBenchOptions, bootstrap: str, logdir: Path,
                seed: int) -> dict[str, Any]:
    """One system, N streams, from a fresh process on fresh topics."""
    tag = f"bench.asr.{system}.{streams}.{seed}"
    audio_topic, transcript_topic = f"{tag}.in", f"{tag}.out"
    kafka = KafkaSettings(bootstrap_servers=bootstrap, client="confluent")
    partitions = partitions_for(system, options.processes)
    ensure_topics(kafka, Topics.of(audio_topic, transcript_topic, partitions).to_create())
    sut = SystemUnderTest(system, "asr", bootstrap, audio_topic, transcript_topic, options.worker_env, logdir,
                          options.processes)
    topics = (audio_topic, transcript_topic)
    producer = make_producer(kafka, client_id="workers-bench-asr")  # warmed by the warm-up stream
    try:
        sut.wait_ready()
        warm = replay(kafka, options.files[:1], 1, 1.0, options.chunk_s, drain_s=240, topics=topics, producer=producer)
        if warm["chunks_answered"] < warm["chunks_sent"]:
            sut.check_alive()
            raise TimeoutError(f"{system}: warm-up stream not answered in 240 s")
        before = sut.scrape(keep=("beam", "outcome", "shared"))
        with ProcessSampler(sut.process.pid) as sampler:
            run = replay(kafka, options.files, streams, options.seconds, options.chunk_s, drain_s=10, topics=topics,
                         keep_samples=True, producer=producer, pause_s=options.pause_s)
        after = sut.scrape(keep=("beam", "outcome", "shared"))
        sut.check_alive()
    finally:
        producer.close()
        sut.stop()
    answered = run["chunks_answered"] / max(run["chunks_sent"], 1)
    figures: dict[str, Any] = {
        "system": system, "streams": streams, **run,
        "answered_fraction": round(answered, 4),
        "rtfx": round(run["audio_s_sent"] * answered / options.seconds, 2),
        "cpu_cores": round(sampler.cpu_cores, 2), "peak_rss_mb": round(sampler.peak_rss / 2**20, 1),
    }
    if sut.metrics_urls:
        batch = histogram_delta(before, after, "workers_batch_size")
        inference = histogram_delta(before, after, "workers_inference_seconds")
        figures |= {"batch_size_mean": batch["mean"], "inference_s_mean_per_batch": inference["mean"],
                    "search_beam": worker_settings(AsrSettings, options.worker_env).beam,
                    "final_searches_by_beam": searches_by_beam(before, after),
                    "finals_by_shared_call": finals_by_shared_call(before, after),
                    "early_second_passes": early_passes(before, after)}
    log.info("%s, %d streams: partial p50 %s p95 %s s, RTFX %s, answered %.1f%%", system, streams,
             run["partial_latency_s"]["p50"], run["partial_latency_s"]["p95"], figures["rtfx"], 100 * answered)
    return figures


def _counted_by(before: dict[str, float], after: dict[str, float], counter: str, label: str) -> dict[str, int]:
    """A counter's increase between two scrapes (kept apart by ``label``), by that label's value."""
    prefix = f"{counter}{{{label}="
    return {key[len(prefix):-1]: int(value - before.get(key, 0)) for key, value in after.items()
            if key.startswith(prefix)}


def searches_by_beam(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """Finals' beam searches between two scrapes by the width they ran with: the configured beam, the busy
    beam once the search processes were backlogged (less accurate finals), 0 for a search that failed."""
    found = _counted_by(before, after, "workers_asr_final_searches_total", "beam")
    return {beam: n for beam, n in sorted(found.items(), key=lambda kv: -int(kv[0])) if n}


def finals_by_shared_call(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """Finals read between two scrapes, by how many finals their second pass's call read together."""
    found = _counted_by(before, after, "workers_asr_finals_by_shared_call_total", "shared")
    return {shared: n for shared, n in sorted(found.items(), key=lambda kv: int(kv[0])) if n}


def early_passes(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """Second passes started before the endpoint between two scrapes: used by their final, or discarded."""
    found = _counted_by(before, after, "workers_asr_early_second_passes_total", "outcome")
    return {outcome: found.get(outcome, 0) for outcome in ("used", "discarded")}


def busy_share(run: dict[str, Any]) -> float | None:
    """The share of a run's searched finals that ran narrower than the worker's beam (``search_beam``): with
    the busy beam, or greedy because the search failed."""
    searches = run.get("final_searches_by_beam") or {}
    if not searches:
        return None
    return 1 - searches.get(str(run["search_beam"]), 0) / sum(searches.values())


def keeps_up(run: dict[str, Any], target_p95_s: float) -> bool:
    p95 = run["partial_latency_s"]["p95"]
    return p95 is not None and p95 < target_p95_s and run["answered_fraction"] >= 0.99


def run_asr_bench(options: AsrBenchOptions) -> dict[str, Any]:
    if not options.files:
        options.files = default_clips()
    logdir = Path(tempfile.mkdtemp(prefix="workers-bench-asr-"))
    runs: dict[str, list[dict[str, Any]]] = {s: [] for s in options.systems if s != TRANSPORT}
    seed = int(time.time()) % 100_000
    transport = None
    with bench_broker(options.bootstrap) as bootstrap:
        if TRANSPORT in options.systems:
            from workers.asr.bench import BENCH

            alone = BenchOptions(seconds=options.seconds, worker_env=options.worker_env, processes=options.processes)
            transport = run_phase(BENCH, TRANSPORT, "saturation", None, alone, bootstrap, logdir, seed)
        for system, system_runs in runs.items():
            for streams in sorted(options.streams):
                seed += 1
                system_runs.append(run_streams(system, streams, options, bootstrap, logdir, seed))
                if not keeps_up(system_runs[-1], options.target_p95_s):
                    break  # more streams only fall further behind
    report = summarise(runs, options, transport)
    report["logs"] = str(logdir)
    return report


def summarise(runs: dict[str, list[dict[str, Any]]], options: AsrBenchOptions,
              transport: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report; ``transport``: the transport's saturation run over chunks of ``options.chunk_s`` (its
    capacity as RTFX is the ceiling of any worker on this broker)."""
    report: dict[str, Any] = {"workload": "asr", "seconds_per_run": options.seconds, "chunk_s": options.chunk_s,
                              "target_p95_s": options.target_p95_s, "clips": len(options.files),
                              "cpu_count": os.cpu_count(), "processes": options.processes}
    for system, system_runs in runs.items():
        passing = [r for r in system_runs if keeps_up(r, options.target_p95_s)]
        best = max(passing, key=lambda r: r["streams"]) if passing else None
        report[system] = {
            "max_streams": best["streams"] if best else 0,
            "throughput": best["rtfx"] if best else 0.0,  # RTFX at max_streams
            "p99_s": best["partial_latency_s"]["p99"] if best else None,
            "runs": [{k: v for k, v in r.items() if k != "samples"} for r in system_runs],
        }
    if transport is not None:
        report[TRANSPORT] = {"throughput": transport["throughput"], "p99_s": transport["p99_s"],
                             "runs": [{k: v for k, v in transport.items() if k != "latencies"}]}
        report["transport_ceiling"] = {"chunks_per_s": transport["throughput"],
                                       "rtfx": round(transport["throughput"] * options.chunk_s, 1)}
        if report.get("ours", {}).get("throughput") and transport["throughput"]:
            report["transport_ceiling"]["end_to_end_fraction"] = round(
                report["ours"]["throughput"] / report["transport_ceiling"]["rtfx"], 4)
    if options.plot:
        plot_cdf(runs, options.plot)
        report["plot"] = str(options.plot)
    if "ours" in runs and report["ours"]["max_streams"]:
        batch = report["ours"]["max_streams"]
        model_only = asr_model_only(batch, 5.0, worker_settings(OnnxSettings, options.worker_env), options.chunk_s)
        report["model_only"] = model_only | {
            "end_to_end_fraction": round(report["ours"]["throughput"] / model_only["throughput"], 3)}
        report["ratios"] = {b: {"max_streams_ratio": round(report["ours"]["max_streams"] / report[b]["max_streams"], 1)
                                if report[b]["max_streams"] else None,
                                "max_streams_ours": report["ours"]["max_streams"],
                                "max_streams_theirs": report[b]["max_streams"]}
                            for b in ("baseline_predict", "baseline_tf_function") if b in runs}
    return report


def plot_cdf(runs: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, ax = plt.subplots(figsize=(7, 4.2))
    for n, (system, system_runs) in enumerate(runs.items()):
        for k, run in enumerate(system_runs):
            values = np.sort(run["samples"]["partial_latency_s"]) * 1000
            if len(values):
                ax.plot(values, np.arange(1, len(values) + 1) / len(values), color=f"C{n}",
                        alpha=0.35 + 0.65 * (k + 1) / len(system_runs), label=f"{system}, {run['streams']} streams")
    ax.axvline(300, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    ax.set_xlabel("chunk produced -> partial read (ms)")
    ax.set_ylabel("fraction of chunks")
    ax.set_title("workers bench asr: partial latency by stream count")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    save_figure(figure, path)


def format_table(report: dict[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:,.0f}"

    lines = [f"workers bench asr: {report['seconds_per_run']:g} s per run, chunks of {report['chunk_s'] * 1000:g} ms in "
             f"real time, {report['clips']} clips, {report['cpu_count']} CPUs"
             + (f", ours as {report['processes']} processes" if report.get("processes", 1) > 1 else ""),
             f"{'system':<22}{'streams':>8}{'RTFX':>7}{'answered':>9}  {'partial ms avg/p50/p90/p95/p99':<36}"
             f"{'final ms p50/p95':<18}{'busy':>6}{'batch':>6}{'infer ms':>9}{'CPU':>6}{'RSS MB':>8}"]
    for system in SYSTEMS:
        for run in report.get(system, {}).get("runs", []):
            p, f = run["partial_latency_s"], run["final_latency_s"]
            partial = "/".join(ms(p[k]) for k in ("avg", "p50", "p90", "p95", "p99"))
            final = "/".join(ms(f[k]) for k in ("p50", "p95"))
            infer, busy = run.get("inference_s_mean_per_batch"), busy_share(run)
            lines.append(f"{system:<22}{run['streams']:>8}{run['rtfx']:>7.1f}{run['answered_fraction']:>9.1%}  "
                         f"{partial:<36}{final:<18}{'-' if busy is None else f'{busy:.0%}':>6}"
                         f"{run.get('batch_size_mean') or 1:>6.1f}{ms(infer):>9}"
                         f"{run['cpu_cores']:>6.2f}{run['peak_rss_mb']:>8.0f}")
    target = ms(report["target_p95_s"])
    for system in SYSTEMS:
        if system in report:
            lines.append(f"{system}: {report[system]['max_streams']} real-time streams with p95 partial < {target} ms")
    if "transport_ceiling" in report:
        t = report["transport_ceiling"]
        lines.append(f"transport only (consume + produce of {report['chunk_s'] * 1000:g} ms chunks, no model): "
                     f"{t['chunks_per_s']:,.0f} chunks/s = RTFX {t['rtfx']:,.0f}"
                     + (f"; end to end is {t['end_to_end_fraction']:.1%} of it" if "end_to_end_fraction" in t else ""))
    if "model_only" in report:
        m = report["model_only"]
        lines.append(f"model only (ONNX Runtime, {m['batch_size']} streams' chunks per call): RTFX {m['throughput']:,.1f}; "
                     f"end to end is {m['end_to_end_fraction']:.0%} of it")
    lines.append("(RTFX: audio seconds answered per wall second; answered: chunks with a result; busy: finals searched "
                 "with the narrower busy beam because the search processes were backlogged; the ladder stops at "
                 "the first stream count over the target)")
    return "\n".join(lines)
