"""``/metrics`` (Prometheus) and the Open Inference Protocol health paths ``/v2/health/live|ready``."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger(__name__)


class Health:
    """Ready once the model is warm and the consumer subscribed; live while the loop keeps turning."""

    def __init__(self, stall_after_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ready = False
        self.stall_after_s = stall_after_s
        self._clock = clock
        self._beat = clock()

    def beat(self) -> None:
        self._beat = self._clock()

    @property
    def live(self) -> bool:
        return self._clock() - self._beat < self.stall_after_s


class MetricsServer:
    def __init__(self, host: str, port: int, health: Health) -> None:
        health_ref = health

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path == "/metrics":
                    self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
                elif self.path == "/v2/health/live":
                    self._send(200 if health_ref.live else 503, b"", "text/plain")
                elif self.path == "/v2/health/ready":
                    self._send(200 if health_ref.ready and health_ref.live else 503, b"", "text/plain")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-http", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics, health on /v2/health/live and /v2/health/ready", self.host, self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
