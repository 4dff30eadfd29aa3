"""Traffic for the chaos scenarios: a steady producer that retries what the broker refused, so every
record the test counts as sent was acknowledged, and readers that count results by the id they name."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tests.conftest import collect, digit_requests
from workers.clicks.events import to_json
from workers.clicks.synthetic import generate
from workers.settings import KafkaSettings
from workers.transport.factory import make_producer
from workers.transport.records import OutgoingRecord, Record


class SteadyLoad:
    """Produces ``records`` at ``rate`` per second in a thread; failed sends are retried until acknowledged."""

    def __init__(self, kafka: KafkaSettings, records: list[OutgoingRecord], rate: float) -> None:
        self.kafka = kafka
        self.records = records
        self.rate = rate
        self.acked = 0
        self.retried = 0
        self._failed: list[OutgoingRecord] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="steady-load", daemon=True)

    def start(self) -> SteadyLoad:
        self._thread.start()
        return self

    def _callback(self, record: OutgoingRecord) -> Callable[[Exception | None, float], None]:
        def done(error: Exception | None, _at: float) -> None:
            with self._lock:
                if error is None:
                    self.acked += 1
                else:
                    self._failed.append(record)
        return done

    def _run(self) -> None:
        producer = make_producer(self.kafka, client_id="chaos-load")
        started = time.monotonic()
        try:
            for n, record in enumerate(self.records):
                producer.produce(record, self._callback(record))
                producer.poll()
                time.sleep(max(0.0, started + (n + 1) / self.rate - time.monotonic()))
            deadline = time.monotonic() + 180  # bounded: retry refused records for at most 3 minutes
            while time.monotonic() < deadline:
                producer.flush(30)
                with self._lock:
                    failed, self._failed = self._failed, []
                if not failed:
                    break
                self.retried += len(failed)
                for record in failed:
                    producer.produce(record, self._callback(record))
                producer.poll()
        finally:
            producer.close()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout_s: float = 300) -> None:
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the load generator did not finish"
        assert self.acked == len(self.records), f"only {self.acked} of {len(self.records)} sends acknowledged"


def results_by_id(kafka: KafkaSettings, output: str, ids: set[str], field: str = "id", timeout_s: float = 120) -> tuple[Counter[str], list[Record]]:
    """Read ``output`` until every id in ``ids`` has a result; returns (results per id, the records)."""
    seen: Counter[str] = Counter()

    def until(records: list[Record]) -> bool:
        seen[str(json.loads(records[-1].value)[field])] += 1
        return ids <= set(seen)

    records = collect(kafka, [output], until, timeout_s=timeout_s)
    return seen, records


def rss_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def report(scenario: str, **figures: object) -> None:
    """One line per scenario, collected into docs/reliability.md."""
    print(f"\nCHAOS {scenario}: " + json.dumps(figures))


BANKING = ["my card hasn't arrived", "how do I top up by transfer?", "I was charged twice", "freeze my card please"]


def asr_chunks(topic: str, n: int, streams: int = 25) -> list[OutgoingRecord]:
    """``n`` audio chunks (160 ms of a bundled LJ Speech clip) of ``streams`` interleaved streams; each stream
    ends with the clip and starts again under a new id."""
    from workers.asr.audio import float_to_pcm16, read_audio
    from workers.asr.protocol import chunk_headers

    audio, rate = read_audio(Path(__file__).resolve().parents[2] / "workers" / "asr" / "samples" / "LJ001-0006.wav")
    step = int(0.16 * rate)
    chunks = [float_to_pcm16(audio[i:i + step]) for i in range(0, len(audio), step)]
    position, session = [0] * streams, [0] * streams
    out = []
    for i in range(n):
        s = i % streams
        seq, end = position[s], position[s] == len(chunks) - 1
        out.append(OutgoingRecord(topic, chunks[seq], f"chaos-{s}-{session[s]}".encode(), chunk_headers(seq, rate, end)))
        position[s] = 0 if end else seq + 1
        session[s] += end
    return out


def valid_messages(worker: str, topic: str, n: int) -> list[OutgoingRecord]:
    """``n`` valid inputs of a workload (bot: 50 conversations; clicks: interleaved synthetic sessions;
    asr: interleaved audio streams)."""
    if worker == "tensor":
        return digit_requests(n, topic)
    if worker == "asr":
        return asr_chunks(topic, n)
    if worker == "bot":
        out = []
        for i in range(n):
            conversation = f"conv-{i % 50}"
            body = {"conversation_id": conversation, "message_id": f"m{i}", "text": BANKING[i % 4], "ts": time.time()}
            out.append(OutgoingRecord(topic, json.dumps(body).encode(), conversation.encode()))
        return out
    events = generate(max(10, n // 7), seed=4, days=0.01)
    while len(events) < n:
        events += generate(max(10, n // 7), seed=len(events), days=0.01)
    return [OutgoingRecord(topic, json.dumps(to_json(e)).encode(), e.session_id.encode()) for e in events[:n]]


def input_offsets(records: list[Record]) -> Counter[tuple[int, int]]:
    """Results per input, named by the ``source.partition``/``source.offset`` headers every result carries."""
    return Counter((int(r.header("source.partition")), int(r.header("source.offset"))) for r in records)


def what_it_says(worker: str, record: Record) -> tuple[object, ...] | None:
    """The part of a result that per-key state decides, for comparing a run with crashes against one
    without: the bot's intent/hand-off sequence, a click's position and top items, a speech stream's finals
    (None for its partials: the streaming model's greedy text is not compared). The bot's confidence is left
    out: its int8 model's figures move with the batch a message shares."""
    body = json.loads(record.value or b"{}")
    if worker == "bot":
        return body["intent"], body["handoff"], body["fallback"], body["reason"], body["turn"]
    if worker == "asr":
        return (body["stream_id"], body["segment"], body["text"]) if body["type"] == "final" else None
    return body["position"], tuple(item["item_id"] for item in body["next_items"]), body["unknown_item"]


def differences(worker: str, records: list[Record], reference: list[Record]) -> list[str]:
    """Inputs where any copy of a result (re-reads included) says other than the reference run's result."""
    def said(rs: list[Record]) -> list[tuple[tuple[int, int], tuple[object, ...]]]:
        out = []
        for r in rs:
            what = what_it_says(worker, r)
            if what is not None and r.header("source.offset") is not None:
                out.append(((int(r.header("source.partition")), int(r.header("source.offset"))), what))
        return out

    expected = dict(said(reference))
    return [f"{source}: {what} != reference {expected.get(source)}" for source, what in said(records)
            if expected.get(source) != what]
