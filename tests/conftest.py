"""Shared fixtures: one real embedded broker per test session, worker processes, result readers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from models import ARTIFACTS
from workers.devtools.broker import EmbeddedBroker, free_port, free_port_block
from workers.client import read, send
from workers.settings import KafkaSettings
from workers.transport.records import OutgoingRecord, Record

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(port=free_port()) as running:
        yield running


@pytest.fixture(params=["kafka-python", "confluent"])
def client(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def kafka(broker: EmbeddedBroker, client: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=broker.bootstrap_servers, client=client)


@pytest.fixture
def topics() -> dict[str, str]:
    """Fresh topic names per test, so tests sharing the broker never see each other's records."""
    tag = uuid.uuid4().hex[:8]
    return {"input": f"req-{tag}", "output": f"res-{tag}", "dlq": f"req-{tag}.dlq", "group": f"g-{tag}"}


@dataclass
class WorkerProcess:
    """A real ``workers serve`` process."""

    worker: str
    kafka: KafkaSettings
    topics: dict[str, str]
    env_extra: dict[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()  # after ``workers serve WORKER``
    process: subprocess.Popen[bytes] | None = None
    metrics_port: int = 0
    log_path: Path | None = None

    def start(self, tmp_path: Path, wait_assigned: bool = True, wait_ready: bool = True) -> WorkerProcess:
        self.metrics_port = free_port_block(4)  # room for `--processes` children (port + i)
        env = os.environ | {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "KAFKA_CLIENT": self.kafka.client,
            "WORKERS_INPUT_TOPIC": self.topics["input"],
            "WORKERS_OUTPUT_TOPIC": self.topics["output"],
            "WORKERS_GROUP_ID": self.topics["group"],
            "WORKERS_METRICS_PORT": str(self.metrics_port),
            "WORKERS_COMMIT_INTERVAL_S": "0.2",
            "PYTHONUNBUFFERED": "1",
        } | self.env_extra
        self.log_path = tmp_path / f"{self.worker}-{self.metrics_port}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workers", "serve", self.worker, *self.args],
            env=env, cwd=REPO, stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT,
        )
        if not wait_ready:
            return self
        self.wait_for(lambda: self.http_status("/v2/health/ready") == 200, 90, "ready")
        if wait_assigned:
            self.wait_for(lambda: self.metric("workers_assigned_partitions") > 0, 60, "assigned partitions")
        return self

    def wait_for(self, condition: object, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited ({self.process.returncode}) before {what}:\n{self.log()}")
            try:
                if condition():  # type: ignore[operator]
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"worker not {what} after {timeout_s}s:\n{self.log()}")

    def http_status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}{path}", timeout=2) as r:
                return int(r.status)
        except urllib.error.HTTPError as e:
            return int(e.code)

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as r:
            return r.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` whose labels include ``labels``."""
        total = 0.0
        for line in self.metrics_text().splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                if all(f'{k}="{v}"' in line for k, v in labels.items()):
                    total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout_s)

    def log(self) -> str:
        return self.log_path.read_text()[-6000:] if self.log_path and self.log_path.exists() else ""

    def events(self) -> str:
        """Its log's hand-over story (assignments, revokes, restores, streams resumed on fresh state, records
        dropped) and its warnings: what a failed state test needs to say which move went wrong."""
        if not (self.log_path and self.log_path.exists()):
            return ""
        said = ("partitions assigned", "partitions revoked", "state: restored", "resumes at", "dropped ",
                "SIGTERM", " WARNING ", " ERROR ")
        lines = [line[:300] for line in self.log_path.read_text().splitlines() if any(s in line for s in said)]
        return f"== {self.worker} worker, log {self.log_path.name}\n" + "\n".join(lines[-60:])


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[object]:
    started: list[WorkerProcess] = []

    def start(worker: str, kafka: KafkaSettings, topics: dict[str, str], wait_assigned: bool = True,
              wait_ready: bool = True, args: tuple[str, ...] = (), **env: str) -> WorkerProcess:
        process = WorkerProcess(worker, kafka, topics, env, args).start(tmp_path, wait_assigned, wait_ready)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process and process.process.poll() is None:
            process.process.kill()
            process.process.wait()


def digit_requests(n: int, topic: str, start: int = 0) -> list[OutgoingRecord]:
    samples = [json.loads(line) for line in (ARTIFACTS / "digits" / "samples.jsonl").read_text().splitlines()]
    out = []
    for i in range(start, start + n):
        sample = samples[i % len(samples)]
        body = json.dumps({"id": f"r{i}", "inputs": sample["inputs"]}).encode()
        out.append(OutgoingRecord(topic, body, key=f"k{i % 13}".encode()))
    return out


def collect(kafka: KafkaSettings, topic_names: list[str], until: object, timeout_s: float = 90) -> list[Record]:
    """Read ``topic_names`` from the beginning until ``until(records)`` is true or the time is up."""
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    reader = read(kafka, topic_names, idle_timeout_s=timeout_s)
    for record in reader:
        records.append(record)
        if until(records) or time.monotonic() > deadline:  # type: ignore[operator]
            break
    reader.close()
    return records


__all__ = ["WorkerProcess", "collect", "digit_requests", "send"]
