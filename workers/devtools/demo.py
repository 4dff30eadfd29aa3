"""``workers demo``: embedded broker + every installed worker that has demo traffic, results and metrics on screen."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from workers import registry
from workers.client import read, send
from workers.devtools.broker import EmbeddedBroker, free_port
from workers.devtools.traffic import MALFORMED_EVERY, DemoTraffic
from workers.plugin import load_object
from workers.settings import KafkaSettings
from workers.topics import Topics
from workers.transport.factory import ensure_topics
from workers.transport.records import OutgoingRecord


def wait_until(check: Callable[[], bool], process: subprocess.Popen[bytes], what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited with code {process.returncode} before {what}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"worker not {what} after {timeout_s}s")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1) as response:
        return response.status == 200


def metric_lines(metrics_url: str, prefixes: tuple[str, ...]) -> list[str]:
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        text = response.read().decode()
    return [line for line in text.splitlines() if line.startswith(prefixes)]


def assigned(metrics_url: str) -> bool:
    """The group join takes a few seconds; traffic sent before it would only measure that wait."""
    return any(float(line.rsplit(" ", 1)[1]) > 0 for line in metric_lines(metrics_url, ("workers_assigned_partitions",)))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run_demo(duration_s: float, rate: float, client: str, metrics_port: int) -> int:
    workloads: list[DemoTraffic] = [load_object(spec.demo)(rate) for spec in registry.workloads().values() if spec.demo]
    workdir = Path(tempfile.mkdtemp(prefix="workers-demo-"))
    broker = EmbeddedBroker(port=free_port()).start()
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, client=client)
    print(f"== embedded broker (Tansu) on {broker.bootstrap_servers}")
    topics = {}
    for w in workloads:
        topics |= Topics.of(w.input_topic, w.output_topic).to_create()
    ensure_topics(kafka, topics)
    processes: list[subprocess.Popen[bytes]] = []
    codes: list[int | None] = []
    try:
        for n, w in enumerate(workloads):
            w.metrics_port = metrics_port + n if metrics_port else free_port()
            env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers, "KAFKA_CLIENT": client,
                                "WORKERS_METRICS_PORT": str(w.metrics_port), "WORKERS_COMMIT_INTERVAL_S": "0.5"}
            log_path = workdir / f"{w.worker}-worker.log"
            processes.append(subprocess.Popen([sys.executable, "-m", "workers", "serve", w.worker], env=env,
                                              stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL))
            print(f"== {w.worker} worker ({w.title}): pid {processes[-1].pid}, log {log_path}")
        for w, process in zip(workloads, processes, strict=True):
            base = f"http://127.0.0.1:{w.metrics_port}"
            wait_until(lambda b=base: http_ok(f"{b}/v2/health/ready"), process, "ready")
            wait_until(lambda b=base: assigned(f"{b}/metrics"), process, "assigned partitions", 60)
            print(f"== {w.worker} ready: metrics at {base}/metrics, health at {base}/v2/health/ready")
        print(f"== sending {rate:g} messages/s to each worker for {duration_s:g}s (0 = until Ctrl-C), "
              f"a malformed one every {MALFORMED_EVERY}th\n")
        _run_traffic_and_show(kafka, workloads, rate, duration_s)
        print()
        for w in workloads:
            summary = f"{w.results} results, {w.dead} malformed in {w.dlq_topic}"
            if w.summary:
                summary += w.summary(w)
            print(f"== {w.worker}: {summary}; event->result p50 {_percentile(w.latencies, 0.5):.1f} ms, "
                  f"p95 {_percentile(w.latencies, 0.95):.1f} ms")
            url = f"http://127.0.0.1:{w.metrics_port}/metrics"
            print(f"   from {url}:")
            for line in metric_lines(url, ("workers_messages", "workers_model_info", "workers_state_keys",
                                           "workers_end_to_end_latency_seconds_count", "workers_batch_size_count")):
                print("     " + line)
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(60) for process in processes]
        print(f"== workers drained and exited with codes {codes}")
        broker.stop()
    return 0 if codes and all(code == 0 for code in codes) else 1


def _run_traffic_and_show(kafka: KafkaSettings, workloads: list[DemoTraffic], rate: float, duration_s: float) -> None:
    stop = threading.Event()
    sent = {w.worker: 0 for w in workloads}

    def records() -> Iterator[OutgoingRecord]:
        start, i = time.monotonic(), 0
        while not stop.is_set() and (duration_s <= 0 or time.monotonic() - start < duration_s):
            for w in workloads:
                record, _ = w.make(i)
                sent[w.worker] += 1
                yield record
            i += 1
            time.sleep(max(0.0, start + i / rate - time.monotonic()))

    sender = threading.Thread(target=lambda: send(kafka, records()), daemon=True)
    sender.start()
    by_topic = {w.output_topic: w for w in workloads} | {w.dlq_topic: w for w in workloads}
    try:
        for record in read(kafka, list(by_topic), idle_timeout_s=30):
            w = by_topic[record.topic]
            if record.topic == w.dlq_topic:
                w.dead += 1
                reason = (record.header("dlq.reason") or b"?").decode()
                print(f"  [{w.worker:<6}] DLQ {reason:<14} {(record.header('dlq.detail') or b'').decode()[:70]}")
            else:
                result = json.loads(record.value or b"{}")
                line, ok = w.show(result, w.expected)
                w.results += w.answers(result)
                w.correct += ok
                latency = result["latency"].get("event_to_result_ms", float("nan"))
                w.latencies.append(latency)
                if line:
                    print(f"  [{w.worker:<6}] {line}  {latency:5.1f} ms")
            if not sender.is_alive() and all(w.results + w.dead >= sent[w.worker] for w in workloads):
                break
    except KeyboardInterrupt:
        stop.set()
