"""``workers demo``: embedded broker + every worker + sample traffic (speech included), with results and metrics on screen."""

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models import ARTIFACTS
from workers.broker import EmbeddedBroker, free_port
from workers.client import read, send
from workers.settings import KafkaSettings
from workers.transport.factory import ensure_topics
from workers.transport.records import OutgoingRecord

MALFORMED_EVERY = 25

# Scripted chats: banking questions, small talk the bot should not answer, a customer asking for a person.
CHATS = [
    ["Hi, my new card still hasn't arrived", "how do I activate it when it comes?"],
    ["I was charged twice for the same coffee", "ok thanks, and how long does a refund take?"],
    ["what's the weather like in Lisbon tomorrow?", "recommend a good pasta recipe"],
    ["my card got swallowed by an ATM", "please let me talk to a human"],
    ["which currencies can I hold?", "what is the exchange rate for euros today?"],
    ["I think someone stole my card details", "how do I freeze my card?"],
    ["why do you need to verify my identity?", "the verification keeps failing"],
    ["can I top up by bank transfer?", "is there a fee for that?"],
]


@dataclass
class Workload:
    """One worker in the demo: its traffic and how its results are shown."""

    worker: str
    title: str
    input_topic: str
    output_topic: str
    make: Callable[[int], tuple[OutgoingRecord, str | None]]  # i -> (record, expected id or None if malformed)
    show: Callable[[dict[str, Any], dict[str, str]], tuple[str, bool]]  # result, expectations -> (line or "", correct)
    expected: dict[str, str] = field(default_factory=dict)
    results: int = 0
    correct: int = 0
    dead: int = 0
    latencies: list[float] = field(default_factory=list)
    metrics_port: int = 0
    answers: Callable[[dict[str, Any]], int] = lambda result: 1
    """How many inputs a result answers (a speech final mid-stream comes beside the chunk's partial)."""

    @property
    def dlq_topic(self) -> str:
        return f"{self.input_topic}.dlq"


def digits_workload() -> Workload:
    samples = [json.loads(line) for line in (ARTIFACTS / "digits" / "samples.jsonl").read_text().splitlines()]
    bad = [b'{"id": "broken", "inputs": ', b'{"id": "no-inputs"}', b'{"id": "short", "inputs": {"pixels": [1, 2, 3]}}',
           b"\xff\xfe\x00garbage", json.dumps({"id": "overflow", "inputs": {"pixels": [1e39] * 64}}).encode()]
    workload: Workload

    def make(i: int) -> tuple[OutgoingRecord, str | None]:
        if i % MALFORMED_EVERY == MALFORMED_EVERY - 1:
            return OutgoingRecord("tensor.requests", bad[(i // MALFORMED_EVERY) % len(bad)], b"bad"), None
        sample = samples[i % len(samples)]
        request_id = f"{sample['id']}#{i}"
        workload.expected[request_id] = sample["label"]
        return OutgoingRecord("tensor.requests", json.dumps({"id": request_id, "inputs": sample["inputs"]}).encode(),
                              request_id.encode()), request_id

    def show(result: dict[str, Any], expected: dict[str, str]) -> tuple[str, bool]:
        want = expected.get(result["id"], "?")
        ok = result["label"] == want
        return f"{result['id']:<14} -> {result['label']} (p={result['score']:.3f}) truth {want} {'ok' if ok else 'MISS'}", ok

    workload = Workload("tensor", "digits classifier", "tensor.requests", "tensor.results", make, show)
    return workload


def chat_workload() -> Workload:
    turns = [(c, t) for c in range(len(CHATS)) for t in range(len(CHATS[c]))]
    workload: Workload

    def make(i: int) -> tuple[OutgoingRecord, str | None]:
        if i % MALFORMED_EVERY == MALFORMED_EVERY - 1:
            body = {"conversation_id": "broken", "message_id": i, "ts": time.time()}  # no text
            return OutgoingRecord("chat.messages", json.dumps(body).encode(), b"broken"), None
        cycle, (chat, turn) = divmod(i, len(turns))[0], turns[i % len(turns)]
        conversation = f"chat-{chat}-{cycle}"
        message_id = f"{conversation}/{turn}"
        workload.expected[message_id] = CHATS[chat][turn]
        body = {"conversation_id": conversation, "message_id": message_id, "text": CHATS[chat][turn], "ts": time.time()}
        return OutgoingRecord("chat.messages", json.dumps(body).encode(), conversation.encode()), message_id

    def show(result: dict[str, Any], expected: dict[str, str]) -> tuple[str, bool]:
        said = expected.get(str(result["message_id"]), "?")
        action = "HANDOFF" if result["handoff"] else ("fallback" if result["fallback"] else result["intent"])
        return (f"{result['conversation_id']:<11} \"{said[:38]}\" -> {action} ({result['confidence']:.2f}): "
                f"{result['reply'][:60]}..."), True

    workload = Workload("bot", "customer-service chat bot", "chat.messages", "chat.replies", make, show)
    return workload


def clicks_workload() -> Workload:
    from workers.clicks.events import sessions, to_json
    from workers.clicks.synthetic import generate

    stream = generate(400, seed=99, days=0.05)  # ~20 sessions live at a time; sent in time order, cycling
    following = {}
    for evs in sessions(stream).values():
        for n, (event, nxt) in enumerate(zip(evs, evs[1:])):
            following[(event.session_id, n)] = nxt.item_id
    positions: dict[str, int] = {}
    workload: Workload

    def make(i: int) -> tuple[OutgoingRecord, str | None]:
        if i % MALFORMED_EVERY == MALFORMED_EVERY - 1:
            body = {"session_id": "broken", "item_id": "i1", "event_type": "teleport", "ts": time.time()}
            return OutgoingRecord("clicks.events", json.dumps(body).encode(), b"broken"), None
        cycle, event = divmod(i, len(stream))[0], stream[i % len(stream)]
        session = f"{event.session_id}.{cycle}"
        position = positions.get(session, -1) + 1
        positions[session] = position
        key = f"{session}/{position}"
        if (event.session_id, position) in following:
            workload.expected[key] = following[(event.session_id, position)]
        body = to_json(event) | {"session_id": session, "ts": time.time()}
        return OutgoingRecord("clicks.events", json.dumps(body).encode(), session.encode()), key

    def show(result: dict[str, Any], expected: dict[str, str]) -> tuple[str, bool]:
        actual = expected.get(f"{result['session_id']}/{result['position']}")
        ranked = [i["item_id"] for i in result["next_items"]]
        verdict = "session ends" if actual is None else (
            f"next {actual} at #{ranked.index(actual) + 1}" if actual in ranked else f"next {actual} not in top {len(ranked)}")
        return (f"{result['session_id']:<9} {result['item_id']:<5} -> {', '.join(ranked[:3])}, ... "
                f"buy p={result.get('purchase_probability', float('nan')):.2f}; {verdict}"), actual in ranked

    workload = Workload("clicks", "behaviour prediction", "clicks.events", "clicks.predictions", make, show)
    return workload


def speech_workload(rate: float) -> Workload:
    """Sample WAVs streamed in real time (one chunk per message, 1/rate s of audio), one stream per file."""
    from workers.asr.audio import float_to_pcm16, read_audio
    from workers.asr.protocol import chunk_headers

    samples = sorted((Path(__file__).parent / "asr" / "samples").glob("*.wav"))
    truth = {"LJ001-0006": "and it is worth mention in passing that as an example of fine typography",
             "librivox-0880": "he was not an ill disposed young man"}
    clips = [(p.stem, *read_audio(p)) for p in samples]
    cursor = {"clip": 0, "position": 0, "seq": 0, "stream": 0}
    workload: Workload

    def make(i: int) -> tuple[OutgoingRecord, str | None]:
        if i % MALFORMED_EVERY == MALFORMED_EVERY - 1:
            return OutgoingRecord("asr.audio", b"\x01\x02\x03", b"broken", chunk_headers(0, 16000)), None
        name, audio, sample_rate = clips[cursor["clip"]]
        stream = f"talk-{cursor['stream']}-{name}"
        step = max(1, int(sample_rate / rate))
        chunk = audio[cursor["position"]:cursor["position"] + step]
        end = cursor["position"] + step >= len(audio)
        record = OutgoingRecord("asr.audio", float_to_pcm16(chunk), stream.encode(),
                                chunk_headers(cursor["seq"], sample_rate, end))
        workload.expected[stream] = truth.get(name, "?")
        cursor["position"], cursor["seq"] = cursor["position"] + step, cursor["seq"] + 1
        if end:
            cursor.update(clip=(cursor["clip"] + 1) % len(clips), position=0, seq=0, stream=cursor["stream"] + 1)
        return record, stream

    shown: dict[str, str] = {}

    def show(result: dict[str, Any], expected: dict[str, str]) -> tuple[str, bool]:
        if result["type"] == "partial" and shown.get(result["stream_id"]) == result["text"]:
            return "", True  # an unchanged partial is not worth a line
        shown[result["stream_id"]] = result["text"]
        if result["type"] == "final":
            return (f"{result['stream_id'][:22]:<22} FINAL \"{result.get('display', result['text'])}\"\n"
                    f"{'':<32}said  \"{expected.get(result['stream_id'], '?')}\""), True
        return f"{result['stream_id'][:22]:<22} #{result['seq']:<3} {result['text'][-70:]}", True

    workload = Workload("asr", "speech recognition", "asr.audio", "asr.transcripts", make, show,
                        answers=lambda r: int(r["type"] == "partial" or r.get("end_of_stream", False)))
    return workload


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
    workloads = [digits_workload(), chat_workload(), clicks_workload(), speech_workload(rate)]
    workdir = Path(tempfile.mkdtemp(prefix="workers-demo-"))
    broker = EmbeddedBroker(port=free_port()).start()
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, client=client)
    print(f"== embedded broker (Tansu) on {broker.bootstrap_servers}")
    topics = {}
    for w in workloads:
        topics |= {w.input_topic: 4, w.output_topic: 4, w.dlq_topic: 1}
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
            if w.worker == "tensor":
                summary += f", accuracy {w.correct / max(1, w.results):.3f} against the true digits"
            if w.worker == "clicks":
                summary += f", actual next item in the top 20: {w.correct / max(1, w.results):.2f} (a session's last event counts as a miss)"
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


def _run_traffic_and_show(kafka: KafkaSettings, workloads: list[Workload], rate: float, duration_s: float) -> None:
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
