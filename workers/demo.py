"""``workers demo``: embedded broker + every worker + sample traffic, with results and metrics on screen."""

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
from pathlib import Path
from typing import Any

from models import ARTIFACTS
from workers.broker import EmbeddedBroker, free_port
from workers.client import read, send
from workers.settings import KafkaSettings
from workers.transport.factory import ensure_topics
from workers.transport.records import OutgoingRecord

# Malformed requests mixed into the traffic, to show the dead-letter topic at work.
BAD_REQUESTS: list[tuple[str, bytes]] = [
    ("invalid_json", b'{"id": "broken", "inputs": '),
    ("missing_field", b'{"id": "no-inputs"}'),
    ("wrong_shape", b'{"id": "short", "inputs": {"pixels": [1, 2, 3]}}'),
    ("invalid_utf8", b"\xff\xfe\x00garbage"),
    ("not_finite", json.dumps({"id": "overflow", "inputs": {"pixels": [1e39] * 64}}).encode()),  # inf in float32
]


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited with code {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"worker not ready at {url} after {timeout_s}s")


def wait_assigned(metrics_url: str, timeout_s: float = 60.0) -> None:
    """The group join takes a few seconds; traffic sent before it would only measure that wait."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = metric_lines(metrics_url, ("workers_assigned_partitions",))
        if any(float(line.rsplit(" ", 1)[1]) > 0 for line in lines):
            return
        time.sleep(0.2)
    raise TimeoutError("the worker was assigned no partitions")


def metric_lines(metrics_url: str, prefixes: tuple[str, ...]) -> list[str]:
    with urllib.request.urlopen(metrics_url, timeout=5) as response:
        text = response.read().decode()
    return [line for line in text.splitlines() if line.startswith(prefixes)]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run_demo(duration_s: float, rate: float, client: str, metrics_port: int) -> int:
    samples = [json.loads(line) for line in (ARTIFACTS / "digits" / "samples.jsonl").read_text().splitlines()]
    workdir = Path(tempfile.mkdtemp(prefix="workers-demo-"))
    broker = EmbeddedBroker(port=free_port()).start()
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, client=client)
    print(f"== embedded broker (Tansu) on {broker.bootstrap_servers}")
    ensure_topics(kafka, {"tensor.requests": 4, "tensor.results": 4, "tensor.requests.dlq": 1})
    env = os.environ | {
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "KAFKA_CLIENT": client,
        "WORKERS_METRICS_PORT": str(metrics_port),
        "WORKERS_COMMIT_INTERVAL_S": "0.5",
    }
    log_path = workdir / "tensor-worker.log"
    worker = subprocess.Popen(
        [sys.executable, "-m", "workers", "serve", "tensor"],
        env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    print(f"== tensor worker (digits classifier, ONNX Runtime) pid {worker.pid}, log {log_path}")
    try:
        wait_ready(f"http://127.0.0.1:{metrics_port}/v2/health/ready", worker)
        wait_assigned(metrics_url)
        print(f"== worker ready; metrics at {metrics_url}, health at /v2/health/ready")
        print(f"== sending {rate:g} requests/s for {duration_s:g}s (0 = until Ctrl-C), a malformed one every 25th\n")
        stop = threading.Event()
        truth: dict[str, str] = {}
        bad_sent = [0]
        sent = threading.Thread(
            target=_traffic, args=(kafka, samples, rate, duration_s, stop, truth, bad_sent), daemon=True
        )
        sent.start()
        latencies, correct, dead = _show_results(kafka, truth, bad_sent, sent, stop)
        print()
        print(f"== {len(latencies)} results, accuracy {correct / max(1, len(latencies)):.3f} against the true digits")
        print(
            f"== event->result latency from the results: p50 {_percentile(latencies, 0.5):.1f} ms, "
            f"p95 {_percentile(latencies, 0.95):.1f} ms; {dead} malformed requests in the dead-letter topic"
        )
        print(f"== from {metrics_url}:")
        for line in metric_lines(metrics_url, ("workers_messages", "workers_model_info", "workers_batch_size_count",
                                               "workers_end_to_end_latency_seconds_count", "workers_in_flight")):
            print("   " + line)
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(60)
        print(f"== worker drained and exited with code {code}")
        broker.stop()
    return 0 if code == 0 else 1


def _traffic(
    kafka: KafkaSettings, samples: list[dict[str, Any]], rate: float, duration_s: float,
    stop: threading.Event, truth: dict[str, str], bad_sent: list[int],
) -> None:
    def records() -> Any:
        start = time.monotonic()
        i = 0
        while not stop.is_set() and (duration_s <= 0 or time.monotonic() - start < duration_s):
            if i % 25 == 24:
                _, value = BAD_REQUESTS[(i // 25) % len(BAD_REQUESTS)]
                bad_sent[0] += 1
                yield OutgoingRecord("tensor.requests", value, key=b"bad")
            else:
                sample = samples[i % len(samples)]
                request_id = f"{sample['id']}#{i}"
                truth[request_id] = sample["label"]
                body = json.dumps({"id": request_id, "inputs": sample["inputs"]}).encode()
                yield OutgoingRecord("tensor.requests", body, key=request_id.encode())
            i += 1
            time.sleep(max(0.0, start + i / rate - time.monotonic()))

    send(kafka, records())


def _show_results(
    kafka: KafkaSettings, truth: dict[str, str], bad_sent: list[int], sender: threading.Thread,
    stop: threading.Event,
) -> tuple[list[float], int, int]:
    latencies: list[float] = []
    correct = dead = 0
    try:
        for record in read(kafka, ["tensor.results", "tensor.requests.dlq"], idle_timeout_s=30):
            if record.topic.endswith(".dlq"):
                dead += 1
                reason = (record.header("dlq.reason") or b"?").decode()
                print(f"  DLQ  {reason:<14} {(record.header('dlq.detail') or b'').decode()[:70]}")
            else:
                result = json.loads(record.value or b"{}")
                want = truth.get(result["id"], "?")
                correct += result["label"] == want
                latency = result["latency"].get("event_to_result_ms", float("nan"))
                latencies.append(latency)
                mark = "ok" if result["label"] == want else "MISS"
                print(f"  {result['id']:<16} -> {result['label']} (p={result['score']:.3f}) truth {want} {mark:<4}"
                      f" event->result {latency:6.1f} ms")
            if not sender.is_alive() and len(latencies) + dead >= len(truth) + bad_sent[0]:
                break
    except KeyboardInterrupt:
        stop.set()
    return latencies, correct, dead

