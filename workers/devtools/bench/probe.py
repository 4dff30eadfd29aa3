"""What a benchmark phase measures, from outside the system under test.

Latency is the time from our ``produce()`` call for an input to the arrival, at our consumer, of the
result that names it (``source.partition``/``source.offset`` headers): broker, queueing, batching,
inference and the result's way back are all inside it.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable

import confluent_kafka as ck
import numpy as np
import psutil
from prometheus_client.parser import text_string_to_metric_families

Offset = tuple[int, int]  # (partition, offset) of an input
FETCH_WAIT_MS = 10
"""Every consumer in a benchmark (ours, the baselines', the probe's) uses this: the embedded broker holds a
fetch for the whole wait even when records arrive, so librdkafka's 500 ms default would be pure latency."""
PRODUCER_CONFIG = {"linger.ms": 1, "acks": "all", "enable.idempotence": True}
"""The load generator produces as a careful backend would (and as our worker does). Idempotence also caps
requests in flight at 5 per connection, and that matters here: without a cap, an open loop at 2,000 msg/s
sent a request per partition every millisecond, the embedded broker answered fewer, and the backlog grew
in the generator itself (produce -> acknowledgment p50 7.7 s, while the worker took 46 ms). With the cap,
waiting messages join the next request and the acknowledgment p50 was 19 ms."""


class LatencyProbe:
    """Produces inputs (paced, or keeping a window of unanswered ones) and times their results."""

    def __init__(self, bootstrap: str, input_topic: str, output_topic: str, partitions: int) -> None:
        self.input_topic = input_topic
        self.producer = ck.Producer({"bootstrap.servers": bootstrap} | PRODUCER_CONFIG)
        self.reader = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": f"{output_topic}-probe",
                                   "enable.auto.commit": False, "fetch.wait.max.ms": FETCH_WAIT_MS})
        self.reader.assign([ck.TopicPartition(output_topic, p, ck.OFFSET_BEGINNING) for p in range(partitions)])
        self.sent: dict[Offset, float] = {}
        self.acked: dict[Offset, float] = {}  # when the broker acknowledged the input
        self.arrived: dict[Offset, float] = {}
        self.duplicates = 0
        self.step_s: list[float] = []  # baselines report their per-message processing time in a header
        self.produced = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="bench-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            for message in self.reader.consume(1000, 0.002):  # librdkafka waits out the timeout: keep it short
                if message.error():
                    continue
                now = time.time()
                headers = dict(message.headers() or [])
                try:
                    source = (int(headers["source.partition"]), int(headers["source.offset"]))
                except (KeyError, ValueError):
                    continue
                with self._lock:
                    if source in self.arrived:
                        self.duplicates += 1
                    else:
                        self.arrived[source] = now
                if "bench.step_s" in headers:
                    self.step_s.append(float(headers["bench.step_s"]))

    def produce(self, key: bytes, value: bytes) -> None:
        """One input, its send time recorded once the broker acknowledges it (by partition and offset)."""
        sent_at = time.time()

        def delivered(error: ck.KafkaError | None, message: ck.Message) -> None:
            if error is None:
                offset = (message.partition(), message.offset())
                with self._lock:
                    self.sent[offset] = sent_at
                    self.acked[offset] = time.time()  # the sender polls at least every 10 ms

        while True:
            try:
                self.producer.produce(self.input_topic, value, key=key, on_delivery=delivered)
                break
            except BufferError:
                self.producer.poll(0.01)
        self.produced += 1
        self.producer.poll(0)

    @property
    def answered(self) -> int:
        return len(self.arrived)

    def send_paced(self, messages: Iterable[tuple[bytes, bytes]], rate: float, seconds: float) -> None:
        """Offered load: ``rate`` messages per second for ``seconds``, whatever the system does. Messages
        due are sent together and the sender waits at least 1 ms: one wait per message could not keep
        up with thousands per second on 2 cores. It waits in ``poll`` (at most 10 ms), so acknowledgments
        are timed when they come, not when the next message is due."""
        source = iter(messages)
        started = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - started) < seconds:
            due = min(int(elapsed * rate) + 1, int(seconds * rate))
            while sent < due:
                self.produce(*next(source))
                sent += 1
            self.producer.poll(min(0.01, max(0.001, sent / rate - (time.monotonic() - started))))
        self.producer.flush(30)

    def send_saturating(self, messages: Iterable[tuple[bytes, bytes]], window: int, seconds: float) -> None:
        """Saturation: keep ``window`` inputs unanswered at all times for ``seconds`` (a closed loop, so
        every system is held at its own capacity with the same queue, and no backlog outlives the phase)."""
        deadline = time.monotonic() + seconds
        source = iter(messages)
        while time.monotonic() < deadline:
            if self.produced - self.answered < window:
                key, value = next(source)
                self.produce(key, value)
            else:
                self.producer.poll(0.001)
        self.producer.flush(30)

    def wait_answered(self, count: int, idle_timeout_s: float, cap_s: float = 600.0) -> bool:
        """Wait until ``count`` inputs are answered, as long as answers keep coming (a slow system drains
        its queue); give up after ``idle_timeout_s`` without a new answer, or ``cap_s`` in all."""
        deadline = time.monotonic() + cap_s
        last, last_change = self.answered, time.monotonic()
        while self.answered < count:
            now = time.monotonic()
            if self.answered != last:
                last, last_change = self.answered, now
            if now - last_change > idle_timeout_s or now > deadline:
                return False
            time.sleep(0.02)
        return True

    def mark(self) -> tuple[set[Offset], int]:
        """Inputs sent so far (excluded from what follows: warm-up), and the duplicates so far."""
        self.producer.flush(30)
        with self._lock:
            return set(self.sent), self.duplicates

    def latencies(self, exclude: set[Offset]) -> tuple[np.ndarray, int, float, float]:
        """(latencies of answered inputs, inputs sent, first send, last arrival) for inputs not in ``exclude``."""
        with self._lock:
            measured = {o: t for o, t in self.sent.items() if o not in exclude}
            pairs = [(t, self.arrived[o]) for o, t in measured.items() if o in self.arrived]
        if not pairs:
            return np.array([]), len(measured), 0.0, 0.0
        sent_at, arrived_at = np.array(pairs).T
        return arrived_at - sent_at, len(measured), float(sent_at.min()), float(arrived_at.max())

    def ack_latencies(self, exclude: set[Offset]) -> np.ndarray:
        """Produce -> broker acknowledgment of inputs not in ``exclude``: the load generator's own share of
        the latency, which should stay small (it is inside every system's figures alike)."""
        with self._lock:
            return np.array([self.acked[o] - t for o, t in self.sent.items() if o not in exclude])

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.reader.close()
        self.producer.flush(5)


class ProcessSampler:
    """CPU time and peak RSS of a process (and its children) while a phase runs."""

    def __init__(self, pid: int, interval_s: float = 0.25) -> None:
        self.process = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="bench-sampler", daemon=True)

    def _tree(self) -> list[psutil.Process]:
        return [self.process, *self.process.children(recursive=True)]

    def _cpu_s(self) -> float:
        total = 0.0
        for p in self._tree():
            try:
                times = p.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
        return total

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.peak_rss = max(self.peak_rss, sum(p.memory_info().rss for p in self._tree()))
            except psutil.Error:
                pass

    def __enter__(self) -> ProcessSampler:
        psutil.cpu_percent()  # starts the host-wide average that __exit__ reads
        self._cpu0, self._t0 = self._cpu_s(), time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.cpu_cores = (self._cpu_s() - self._cpu0) / max(1e-9, time.monotonic() - self._t0)
        self.host_cpu_percent = psutil.cpu_percent()  # everything: broker, load generator, system under test
        self._stop.set()
        self._thread.join(2)


class GpuSampler:
    """Mean GPU utilisation from ``nvidia-smi`` while a phase runs; ``None`` where there is no GPU."""

    def __init__(self, interval_s: float = 0.5) -> None:
        import shutil

        self.available = shutil.which("nvidia-smi") is not None
        self.interval_s = interval_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="bench-gpu", daemon=True)

    def _sample(self) -> None:
        import subprocess

        while not self._stop.wait(self.interval_s):
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, check=False).stdout.split()
            if out:
                self.samples.append(float(out[0]))

    def __enter__(self) -> GpuSampler:
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self.available:
            self._thread.join(2)

    @property
    def mean_percent(self) -> float | None:
        return round(float(np.mean(self.samples)), 1) if self.samples else None


def scrape(metrics_url: str, keep: tuple[str, ...] = ()) -> dict[str, float]:
    """Sample name (+ ``|le`` for buckets, ``{label=value}`` for each label in ``keep``) -> value, summed over
    all other labels."""
    text = urllib.request.urlopen(metrics_url, timeout=5).read().decode()
    values: Counter[str] = Counter()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name + (f"|{sample.labels['le']}" if "le" in sample.labels else "")
            name += "".join(f"{{{label}={sample.labels[label]}}}" for label in keep if label in sample.labels)
            values[name] += sample.value
    return dict(values)


def histogram_delta(before: dict[str, float], after: dict[str, float], name: str) -> dict[str, object]:
    """Count, mean and per-bucket counts of histogram ``name`` between two scrapes."""
    count = after.get(f"{name}_count", 0) - before.get(f"{name}_count", 0)
    total = after.get(f"{name}_sum", 0) - before.get(f"{name}_sum", 0)
    buckets: dict[str, float] = {}
    previous = 0.0
    prefix = f"{name}_bucket|"
    for key in sorted((k for k in after if k.startswith(prefix)), key=lambda k: float(k.split("|")[1])):
        cumulative = after[key] - before.get(key, 0)
        if cumulative - previous > 0:
            buckets[key.split("|")[1]] = int(cumulative - previous)
        previous = cumulative
    return {"count": int(count), "mean": round(total / count, 6) if count else None, "buckets": buckets}


def percentiles(latencies: np.ndarray) -> dict[str, float | None]:
    if not len(latencies):
        return {"p50_s": None, "p95_s": None, "p99_s": None, "mean_s": None}
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    return {"p50_s": round(float(p50), 4), "p95_s": round(float(p95), 4), "p99_s": round(float(p99), 4),
            "mean_s": round(float(latencies.mean()), 4)}
