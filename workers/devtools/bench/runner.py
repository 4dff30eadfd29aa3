"""``workers bench WORKLOAD``: phases, systems, the table, the JSON and the latency CDF plot.

Systems: ``transport`` (consume + produce only, :mod:`workers.devtools.bench.transport`), ``ours`` (``workers
serve WORKLOAD``), ``baseline_predict`` and ``baseline_tf_function`` (:mod:`workers.devtools.bench.baseline`), and
for a workload whose state has a changelog ``ours_memory_state`` (ours with state in memory only).
Every phase starts the system fresh on fresh topics of the same broker, warms it up with a few messages, then
measures:

* ``saturation``: a closed loop holding ``window`` inputs unanswered for ``seconds``; its throughput is
  the system's capacity, its latency that of a queue of ``window``;
* ``rate R``: R messages per second offered for ``seconds``. Automatic rates: half of each baseline's
  capacity (every system runs it, so p99 is compared at equal load) and half of ours. The transport runs
  saturation only: its capacity is the ceiling; so does ``ours_memory_state``: beside ours, the changelog's cost.

Then, with everything stopped, model-only ONNX Runtime throughput at the worker's mean batch size. A report
shows three ceilings beside end to end: the transport's, the model's, and the baselines' (what a plain loop
gets), so the serving overhead is visible from both sides.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic_settings import BaseSettings

from workers import registry
from workers.devtools.bench.probe import (
    GpuSampler,
    LatencyProbe,
    ProcessSampler,
    histogram_delta,
    percentiles,
    scrape,
)
from workers.devtools.bench.workloads import ALL_SYSTEMS, MEMORY_STATE, SYSTEMS, TRANSPORT, BenchWorkload
from workers.devtools.broker import EmbeddedBroker, free_port
from workers.plugin import load_object
from workers.settings import KafkaSettings, OnnxSettings
from workers.topics import Topics
from workers.transport.factory import ensure_topics

SettingsT = TypeVar("SettingsT", bound=BaseSettings)
log = logging.getLogger(__name__)
PARTITIONS = 4
WARMUP_MESSAGES = 16


def partitions_for(system: str, processes: int) -> int:
    """Partitions of a run's topics: 4, or for ours (and the transport it is held against) one per worker
    process when ``--processes`` asks for more (a consumer group leaves a process beyond the partition count idle)."""
    return max(PARTITIONS, processes if system in ("ours", MEMORY_STATE, TRANSPORT) else 1)


@dataclass
class BenchOptions:
    seconds: float = 15.0
    window: int = 256
    rates: list[float] | None = None  # None: automatic
    systems: tuple[str, ...] = ALL_SYSTEMS
    bootstrap: str | None = None  # None: an embedded broker
    plot: Path | None = None
    worker_env: dict[str, str] = field(default_factory=dict)  # extra settings for `workers serve` (and the transport)
    processes: int = 1  # ours as `workers serve --processes N`


class SystemUnderTest:
    """One process serving the workload: ours or a baseline loop."""

    def __init__(self, system: str, workload: str, bootstrap: str, input_topic: str, output_topic: str,
                 env: dict[str, str], logdir: Path, processes: int = 1) -> None:
        self.system = system
        self.metrics_urls: list[str] = []  # ours: one per worker process
        environment = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "TF_CPP_MIN_LOG_LEVEL": "2"}
        if system in ("ours", MEMORY_STATE):
            port = free_port()
            self.metrics_urls = [f"http://127.0.0.1:{port + i}" for i in range(processes)]
            environment |= {"KAFKA_CLIENT": "confluent", "WORKERS_INPUT_TOPIC": input_topic,
                            "WORKERS_OUTPUT_TOPIC": output_topic, "WORKERS_GROUP_ID": f"{input_topic}-group",
                            "WORKERS_METRICS_PORT": str(port), "WORKERS_MODEL_POLL_S": "0",
                            "WORKERS_LOG_LEVEL": "WARNING"} | env
            if system == MEMORY_STATE:
                environment["WORKERS_STATE_CHANGELOG"] = "false"
            command = [sys.executable, "-m", "workers", "serve", workload, "--processes", str(processes)]
        elif system == TRANSPORT:  # the worker's client and settings, so the ceiling is the worker's own
            environment |= {"KAFKA_CLIENT": "confluent"} | env
            command = [sys.executable, "-m", "workers.devtools.bench.transport", "--input", input_topic,
                       "--output", output_topic, "--group", f"{input_topic}-group"]
        else:
            mode = system.removeprefix("baseline_")
            command = [sys.executable, "-m", "workers.devtools.bench.baseline", workload, mode, "--bootstrap", bootstrap,
                       "--input", input_topic, "--output", output_topic, "--group", f"{input_topic}-group"]
        self.log_path = logdir / f"{input_topic}.log"
        self.process = subprocess.Popen(command, env=environment, stdin=subprocess.DEVNULL,
                                        stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT)

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.system} exited with code {self.process.returncode}:\n{tail}")

    def wait_ready(self, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        for url in self.metrics_urls:
            while True:
                self.check_alive()
                try:
                    if urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1).status == 200:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.system} not ready in {timeout_s}s")
                time.sleep(0.1)

    def scrape(self, keep: tuple[str, ...] = ()) -> dict[str, float]:
        """Every worker process's metrics, summed (counters and histograms add up); ``keep``: labels kept apart."""
        total: dict[str, float] = {}
        for url in self.metrics_urls:
            for name, value in scrape(f"{url}/metrics", keep).items():
                total[name] = total.get(name, 0.0) + value
        return total

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def run_phase(workload: BenchWorkload, system: str, phase: str, rate: float | None, options: BenchOptions,
              bootstrap: str, logdir: Path, seed: int) -> dict[str, Any]:
    """One system, one phase, from a fresh process on fresh topics; returns its figures."""
    tag = f"bench.{workload.name}.{system}.{phase}.{seed}".replace(" ", "")
    input_topic, output_topic = f"{tag}.in", f"{tag}.out"
    partitions = partitions_for(system, options.processes)
    ensure_topics(KafkaSettings(bootstrap_servers=bootstrap), Topics.of(input_topic, output_topic, partitions).to_create())
    sut = SystemUnderTest(system, workload.name, bootstrap, input_topic, output_topic, options.worker_env, logdir,
                          options.processes)
    probe = LatencyProbe(bootstrap, input_topic, output_topic, partitions)
    need = int((rate or 2000) * options.seconds * 1.1) + options.window + WARMUP_MESSAGES
    messages = itertools.cycle(workload.messages(min(need, 20_000), seed))  # a long run repeats the pool
    try:
        sut.wait_ready()
        for _ in range(WARMUP_MESSAGES):
            probe.produce(*next(messages))
        if not probe.wait_answered(WARMUP_MESSAGES, idle_timeout_s=300, cap_s=300):
            sut.check_alive()
            raise TimeoutError(f"{system}: warm-up messages not answered in 300s")
        warmup, duplicates_before = probe.mark()
        before = sut.scrape()
        with ProcessSampler(sut.process.pid) as sampler, GpuSampler() as gpu:
            if rate is None:
                probe.send_saturating(messages, options.window, options.seconds)
            else:
                probe.send_paced(messages, rate, options.seconds)
            sent = len(probe.sent) - len(warmup)
            probe.wait_answered(len(warmup) + sent, idle_timeout_s=10.0)
        after = sut.scrape()
        sut.check_alive()
    finally:
        sut.stop()
        probe.close()
    latencies, sent, first_sent, last_arrival = probe.latencies(warmup)
    acks = percentiles(probe.ack_latencies(warmup))
    answered = len(latencies)
    figures: dict[str, Any] = {
        "phase": phase, "offered_per_s": rate, "sent": sent, "answered": answered,
        "unanswered": sent - answered, "duplicates": probe.duplicates - duplicates_before,
        "throughput": round(answered / (last_arrival - first_sent), 1) if answered > 1 else 0.0,
        **percentiles(latencies),
        "input_ack_p50_s": acks["p50_s"], "input_ack_p99_s": acks["p99_s"],
        "cpu_cores": round(sampler.cpu_cores, 2), "host_cpu_percent": sampler.host_cpu_percent, "peak_rss_mb": round(sampler.peak_rss / 2**20, 1),
        "gpu_util_percent": gpu.mean_percent,
    }
    if sut.metrics_urls:
        batch = histogram_delta(before, after, "workers_batch_size")
        inference = histogram_delta(before, after, "workers_inference_seconds")
        figures |= {"batch_size_mean": batch["mean"], "batch_size_buckets": batch["buckets"],
                    "inference_s_mean_per_batch": inference["mean"]}
    elif probe.step_s:
        figures |= {"batch_size_mean": 1.0, "batch_size_buckets": {"1": answered},
                    "step_s_median_per_message": round(float(np.median(probe.step_s)), 6)}
    figures["latencies"] = latencies
    log.info("%s %s: %s", system, phase, {k: v for k, v in figures.items() if k not in ("latencies", "batch_size_buckets")})
    return figures


def automatic_rates(capacity: dict[str, float]) -> dict[str, list[float]]:
    """Half of each baseline's capacity (for every system that can take it), and half of ours (higher open-loop
    rates on 2 cores starve the system of the CPU the load generator and broker take)."""
    rates: dict[str, list[float]] = {s: [] for s in capacity}
    common = sorted({max(1.0, round(capacity[s] * 0.5, 1)) for s in capacity if s != "ours"})
    for rate in common:
        for system, cap in capacity.items():
            if rate <= cap * 1.2:
                rates[system].append(rate)
    if "ours" in capacity:
        rates["ours"].append(round(capacity["ours"] * 0.5, 1))
    return rates


@contextlib.contextmanager
def bench_broker(bootstrap: str | None) -> Iterator[str]:
    """The cluster a benchmark runs against: ``bootstrap`` when given, else an embedded broker for its duration."""
    if bootstrap is not None:
        yield bootstrap
        return
    broker = EmbeddedBroker(port=free_port()).start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


def run_bench(name: str, options: BenchOptions) -> dict[str, Any]:
    workload: BenchWorkload = load_object(registry.get(name).bench)
    if getattr(registry.handler_class(name), "state_codec", None) is None:  # no changelog to do without
        options = replace(options, systems=tuple(s for s in options.systems if s != MEMORY_STATE))
    logdir = Path(tempfile.mkdtemp(prefix=f"workers-bench-{name}-"))
    results: dict[str, dict[str, Any]] = {s: {"runs": []} for s in options.systems}
    seed = int(time.time()) % 100_000
    with bench_broker(options.bootstrap) as bootstrap:
        for system in options.systems:
            log.info("%s: saturation, window %d, %.0fs", system, options.window, options.seconds)
            seed += 1
            results[system]["runs"].append(run_phase(workload, system, "saturation", None, options, bootstrap, logdir, seed))
        models = [s for s in options.systems if s not in (TRANSPORT, MEMORY_STATE)]
        capacity = {s: results[s]["runs"][0]["throughput"] for s in models}
        rates = {s: list(options.rates) for s in models} if options.rates is not None else automatic_rates(capacity)
        for system in models:
            for rate in rates[system]:
                log.info("%s: %.1f msg/s offered for %.0fs", system, rate, options.seconds)
                seed += 1
                results[system]["runs"].append(run_phase(workload, system, f"rate {rate:g}", rate, options, bootstrap,
                                                         logdir, seed))
    report = summarise(workload, results, options)
    report["logs"] = str(logdir)
    return report


def summarise(workload: BenchWorkload, results: dict[str, dict[str, Any]], options: BenchOptions) -> dict[str, Any]:
    report: dict[str, Any] = {"workload": workload.name, "seconds_per_phase": options.seconds,
                              "saturation_window": options.window, "cpu_count": os.cpu_count(),
                              "processes": options.processes}
    for system, result in results.items():
        saturation = result["runs"][0]
        report[system] = {"throughput": saturation["throughput"], "p99_s": saturation["p99_s"],
                          "p50_s": saturation["p50_s"], "p95_s": saturation["p95_s"],
                          "runs": [{k: v for k, v in run.items() if k != "latencies"} for run in result["runs"]]}
    if options.plot:
        plot_cdf(results, workload.name, options.plot)
        report["plot"] = str(options.plot)
    if "ours" in results:
        ours = results["ours"]["runs"][0]
        batch = max(1, int(round(ours.get("batch_size_mean") or 1)))
        model_only = workload.model_only(batch, 5.0, worker_settings(OnnxSettings, options.worker_env))
        report["model_only"] = model_only | {
            "end_to_end_fraction": round(ours["throughput"] / model_only["throughput"], 3)}
        if model_only.get("scoring_throughput"):
            report["model_only"]["scoring_end_to_end_fraction"] = round(
                ours["throughput"] / model_only["scoring_throughput"], 3)
        if TRANSPORT in results and results[TRANSPORT]["runs"][0]["throughput"]:
            transport = results[TRANSPORT]["runs"][0]["throughput"]
            report["transport_ceiling"] = {"throughput": transport,
                                           "end_to_end_fraction": round(ours["throughput"] / transport, 3)}
        if MEMORY_STATE in results and results[MEMORY_STATE]["runs"][0]["throughput"]:
            memory = results[MEMORY_STATE]["runs"][0]
            report["changelog_cost"] = {"throughput_memory_only": memory["throughput"],
                                        "throughput_fraction": round(ours["throughput"] / memory["throughput"], 3),
                                        "saturation_p99_memory_only_s": memory["p99_s"]}
        ratios: dict[str, Any] = {}
        for baseline in ("baseline_predict", "baseline_tf_function"):
            if baseline not in results or not results[baseline]["runs"][0]["throughput"]:
                continue
            theirs = results[baseline]["runs"][0]
            ratios[baseline] = {"throughput_ratio": round(ours["throughput"] / theirs["throughput"], 1),
                                "saturation_p99_ours_s": ours["p99_s"], "saturation_p99_theirs_s": theirs["p99_s"]}
            common = _same_rate(results["ours"]["runs"], results[baseline]["runs"])
            if common:
                ratios[baseline] |= common
        report["ratios"] = ratios
    return report


def worker_settings(kind: type[SettingsT], env: dict[str, str]) -> SettingsT:
    """One section of the settings our worker ran with (``OnnxSettings``, a workload's own): its defaults, the
    environment, then ``--worker-env``."""
    prefix = kind.model_config.get("env_prefix", "")
    return kind(**{k.removeprefix(prefix).lower(): v for k, v in env.items() if k.startswith(prefix)})


def _same_rate(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """p99 of both at the highest offered rate both ran (equal load)."""
    shared = {r["offered_per_s"] for r in ours if r["offered_per_s"]} & {r["offered_per_s"] for r in theirs}
    if not shared:
        return None
    rate = max(shared)
    mine = next(r for r in ours if r["offered_per_s"] == rate)
    other = next(r for r in theirs if r["offered_per_s"] == rate)
    return {"equal_load_per_s": rate, "equal_load_p99_ours_s": mine["p99_s"], "equal_load_p99_theirs_s": other["p99_s"]}


def plot_cdf(results: dict[str, dict[str, Any]], name: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    offered = {run["phase"]: run["offered_per_s"] or 0.0 for r in results.values() for run in r["runs"]}
    phases = sorted(offered, key=lambda p: (p != "saturation", offered[p]))
    colours = {system: f"C{n}" for n, system in enumerate((*SYSTEMS, TRANSPORT, MEMORY_STATE))}
    figure, axes = plt.subplots(1, len(phases), figsize=(4.2 * len(phases), 3.6), squeeze=False)
    for ax, phase in zip(axes[0], phases, strict=True):
        for system, result in results.items():
            run = next((r for r in result["runs"] if r["phase"] == phase), None)
            if run is None or not len(run["latencies"]):
                continue
            values = np.sort(run["latencies"]) * 1000
            ax.plot(values, np.arange(1, len(values) + 1) / len(values), color=colours.get(system),
                    label=f"{system} ({run['throughput']:g}/s)")
        ax.set_xscale("log")
        ax.set_xlabel("produce -> result (ms)")
        ax.set_title(f"{name}: {phase}" + ("" if phase != "saturation" else " (closed loop)"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("fraction of messages")
    save_figure(figure, path)


def save_figure(figure: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def format_table(report: dict[str, Any]) -> str:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:,.1f}"

    lines = [f"workers bench {report['workload']}: {report['seconds_per_phase']:g}s per phase, "
             f"saturation window {report['saturation_window']}, {report['cpu_count']} CPUs"
             + (f", ours as {report['processes']} processes" if report.get("processes", 1) > 1 else ""),
             f"{'system':<22}{'phase':<13}{'offered/s':>10}{'msg/s':>9}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}"
             f"{'unans':>6}{'batch':>7}{'infer ms':>10}{'CPU':>6}{'host%':>6}{'RSS MB':>8}{'ack p99':>9}"]
    for system in ALL_SYSTEMS:
        for run in report.get(system, {}).get("runs", []):
            infer = run.get("inference_s_mean_per_batch", run.get("step_s_median_per_message"))
            lines.append(f"{system:<22}{run['phase']:<13}{run['offered_per_s'] or '-':>10}{run['throughput']:>9,.1f}"
                         f"{ms(run['p50_s']):>10}{ms(run['p95_s']):>10}{ms(run['p99_s']):>10}{run['unanswered']:>6}"
                         f"{run.get('batch_size_mean') or 0:>7.1f}{ms(infer):>10}{run['cpu_cores']:>6.2f}"
                         f"{run.get('host_cpu_percent', 0):>6.0f}"
                         f"{run['peak_rss_mb']:>8.0f}{ms(run.get('input_ack_p99_s')):>9}")
    if "transport_ceiling" in report:
        t = report["transport_ceiling"]
        lines.append(f"transport only (consume + produce, no model): {t['throughput']:,.1f} msg/s; "
                     f"end to end is {t['end_to_end_fraction']:.0%} of it")
    if "changelog_cost" in report:
        c = report["changelog_cost"]
        lines.append(f"state changelog: ours {c['throughput_fraction']:.0%} of the throughput with state in memory only "
                     f"({c['throughput_memory_only']:,.1f} msg/s, saturation p99 {ms(c['saturation_p99_memory_only_s'])} ms)")
    if "model_only" in report:
        m = report["model_only"]
        lines.append(f"model only (ONNX Runtime, batch {m['batch_size']}): {m['throughput']:,.1f} msg/s; "
                     f"end to end is {m['end_to_end_fraction']:.0%} of it")
        if "scoring_end_to_end_fraction" in m:
            lines.append(f"model only with the workload's scoring around the call (same batch, in process): "
                         f"{m['scoring_throughput']:,.1f} msg/s; end to end is {m['scoring_end_to_end_fraction']:.0%} of it")
    for baseline, r in report.get("ratios", {}).items():
        line = (f"ours vs {baseline}: {r['throughput_ratio']:g}x throughput; saturation p99 "
                f"{ms(r['saturation_p99_ours_s'])} vs {ms(r['saturation_p99_theirs_s'])} ms")
        if "equal_load_per_s" in r:
            line += (f"; at {r['equal_load_per_s']:g} msg/s p99 {ms(r['equal_load_p99_ours_s'])} vs "
                     f"{ms(r['equal_load_p99_theirs_s'])} ms")
        lines.append(line)
    lines.append("(unans: inputs without a result 10 s after the last answer; infer ms: ours = one ONNX Runtime "
                 "call, baselines = decode->model->encode of one message; ack p99: the load generator's produce -> "
                 "broker acknowledgment, inside the latency)")
    return "\n".join(lines)


def main_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, default=float)
