"""A TLS front for the embedded broker.

Tansu 0.6.0's ``--cert`` and ``--key`` options refuse to be given together, so its own TLS cannot be
switched on. Instead the broker listens in plain text on an internal loopback port and *advertises*
this proxy's address: every client connection (bootstrap and the metadata-advertised broker) arrives
here over TLS and is relayed byte for byte to the broker.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import ssl
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class TlsProxy:
    def __init__(self, host: str, port: int, backend: tuple[str, int], cert: str | Path, key: str | Path) -> None:
        self.host, self.port, self.backend = host, port, backend
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(str(cert), str(key))
        # No TLS 1.3 session tickets: they arrive unasked after the handshake, and kafka-python closes a
        # connection that turns readable with no request in flight.
        self._context.num_tickets = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.base_events.Server | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="tls-proxy", daemon=True)

    def start(self) -> TlsProxy:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._relay, self.host, self.port, ssl=self._context))
        except BaseException as exc:  # noqa: BLE001 (reported to start())
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            broker_reader, broker_writer = await asyncio.open_connection(*self.backend)
        except OSError as exc:
            log.warning("TLS proxy: broker at %s:%d unreachable: %s", *self.backend, exc)
            client_writer.close()
            return
        await asyncio.gather(_pipe(client_reader, broker_writer), _pipe(broker_reader, client_writer))

    def stop(self) -> None:
        if self._thread.is_alive():
            try:  # end the open relays inside the loop, so no coroutine outlives it half-way through a read
                asyncio.run_coroutine_threadsafe(self._close_all(), self._loop).result(5)
            except (RuntimeError, TimeoutError, concurrent.futures.TimeoutError):
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)

    async def _close_all(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()
