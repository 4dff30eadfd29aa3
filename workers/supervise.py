"""``workers serve X --processes N``: N worker processes in one consumer group on one host.

Python runs one batch loop per process, so a host with more cores than one worker uses scales out by
processes; Kafka's group protocol splits the partitions between them. The supervisor gives each child its
own metrics port (``--metrics-port`` + i) and a share of the cores for ONNX Runtime (unless
``WORKERS_ONNX_INTRA_OP_NUM_THREADS`` is set), restarts a child that dies (at most ``MAX_RESTARTS`` in
``RESTART_WINDOW_S``, then it stops them all and exits 1, so an orchestrator sees the failure), and on
SIGTERM/SIGINT stops every child cleanly (each commits what it produced) before exiting.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque

log = logging.getLogger(__name__)
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
STOP_TIMEOUT_S = 30.0


def child_environment(index: int, processes: int, metrics_port: int, base: dict[str, str]) -> dict[str, str]:
    """What child ``index`` of ``processes`` runs with: its metrics port, and its share of the cores."""
    env = dict(base)
    env["WORKERS_METRICS_PORT"] = str(metrics_port + index if metrics_port else 0)
    if env.get("WORKERS_GROUP_INSTANCE_ID"):  # a static member id is one process's own
        env["WORKERS_GROUP_INSTANCE_ID"] = f"{env['WORKERS_GROUP_INSTANCE_ID']}-{index}"
    if "WORKERS_ONNX_INTRA_OP_NUM_THREADS" not in env:
        env["WORKERS_ONNX_INTRA_OP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // processes))
    return env


class Supervisor:
    def __init__(self, command: list[str], processes: int, metrics_port: int) -> None:
        self.command, self.processes, self.metrics_port = command, processes, metrics_port
        self.children: dict[int, subprocess.Popen[bytes]] = {}
        self.restarts: deque[float] = deque()
        self.stopping = threading.Event()

    def spawn(self, index: int) -> None:
        env = child_environment(index, self.processes, self.metrics_port, dict(os.environ))
        self.children[index] = subprocess.Popen(self.command, env=env, stdin=subprocess.DEVNULL)
        log.info("child %d started: pid %d, metrics port %s", index, self.children[index].pid, env["WORKERS_METRICS_PORT"])

    def stop(self, *_: object) -> None:
        self.stopping.set()

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self.stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            for index in range(self.processes):
                self.spawn(index)
            code = self._watch()
        finally:
            self._stop_children()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return code

    def _watch(self) -> int:
        while not self.stopping.wait(0.5):
            for index, child in list(self.children.items()):
                code = child.poll()
                if code is None:
                    continue
                now = time.monotonic()
                while self.restarts and now - self.restarts[0] > RESTART_WINDOW_S:
                    self.restarts.popleft()
                if len(self.restarts) >= MAX_RESTARTS:
                    log.error("child %d exited with %d; %d restarts in %.0f s already: stopping all", index, code,
                              len(self.restarts), RESTART_WINDOW_S)
                    return 1
                log.warning("child %d (pid %d) exited with %d; restarting it", index, child.pid, code)
                self.restarts.append(now)
                self.spawn(index)
        return 0

    def _stop_children(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for index, child in self.children.items():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("child %d did not stop in %.0f s; killing it", index, STOP_TIMEOUT_S)
                child.kill()
                child.wait()


def serve_processes(worker: str, processes: int, metrics_port: int, config: str | None, model: str | None) -> int:
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s supervisor [%(process)d] %(message)s")
    command = [sys.executable, "-m", "workers", "serve", worker]
    if config:
        command += ["--config", config]
    if model:
        command += ["--model", model]
    return Supervisor(command, processes, metrics_port).run()
