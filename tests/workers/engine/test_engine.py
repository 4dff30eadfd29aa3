"""The engine's promises, driven through the in-memory transport with the real digits model."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import pytest

from models import ARTIFACTS
from tests.fakes import FakeConsumer, FakeProducer
from workers.engine.engine import FatalDeliveryError, StreamEngine
from workers.engine.handler import Deferred, InvalidMessage, Outcome, Owed, Pending, Result
from workers.settings import EngineSettings, OnnxSettings
from workers.tensor.handler import TensorHandler
from workers.transport.base import DeliveryCallback
from workers.transport.records import OutgoingRecord, Record, TopicPartition

TOPIC = "tensor.requests"
SAMPLES = [json.loads(line) for line in (ARTIFACTS / "digits" / "samples.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def handler() -> TensorHandler:
    return TensorHandler(ARTIFACTS / "digits", OnnxSettings(providers=["CPUExecutionProvider"]))


def request(partition: int, offset: int, rid: str, body: bytes | None = None) -> Record:
    value = body if body is not None else json.dumps({"id": rid, "inputs": SAMPLES[offset % 50]["inputs"]}).encode()
    return Record(TOPIC, partition, offset, f"key-{partition}".encode(), value, [("trace", b"t1")], 1_000)


def make(handler: TensorHandler, records: list[Record], producer: FakeProducer | None = None,
         **settings: Any) -> tuple[StreamEngine, FakeConsumer, FakeProducer]:
    partitions = {TopicPartition(TOPIC, p) for p in range(2)}
    consumer = FakeConsumer(records, partitions)
    producer = producer or FakeProducer()
    engine = StreamEngine(handler, EngineSettings(commit_interval_s=0.001, **settings), consumer, producer)
    return engine, consumer, producer


def run_until_idle(engine: StreamEngine, consumer: FakeConsumer) -> None:
    engine.run(until=lambda: not consumer.pending and engine.tracker.in_flight == 0)


def test_every_valid_message_gets_a_result_and_bad_ones_go_to_the_dlq(handler: TensorHandler) -> None:
    records = [request(p, o, f"p{p}-{o}") for p in range(2) for o in range(30)]
    records.append(request(0, 30, "bad", b'{"id": "bad", "inputs": {"pixels": [1]}}'))
    records.append(request(1, 30, "bad2", b"\xff\xfe"))
    engine, consumer, producer = make(handler, records)
    run_until_idle(engine, consumer)

    results = [json.loads(r.value) for r in producer.topic("tensor.results")]
    assert sorted(r["id"] for r in results) == sorted(f"p{p}-{o}" for p in range(2) for o in range(30))
    for p in range(2):  # per-key (per-partition) order is the input order
        ids = [r["id"] for r in results if r["id"].startswith(f"p{p}-")]
        assert ids == [f"p{p}-{o}" for o in range(30)]
    assert all(r["model"] == "digits" and "inference_ms" in r["latency"] for r in results)

    dead = producer.topic("tensor.requests.dlq")
    assert [r.value for r in dead] == [b'{"id": "bad", "inputs": {"pixels": [1]}}', b"\xff\xfe"]
    headers = dict(dead[0].headers)
    assert headers["dlq.reason"] == b"wrong_shape" and headers["trace"] == b"t1"
    assert headers["dlq.source.offset"] == b"30" and headers["dlq.source.partition"] == b"0"
    assert dict(dead[1].headers)["dlq.reason"] == b"invalid_utf8"
    assert consumer.committed() == {TopicPartition(TOPIC, 0): 31, TopicPartition(TOPIC, 1): 31}
    assert consumer.closed and producer.closed


def test_results_name_their_input_so_consumers_can_deduplicate(handler: TensorHandler) -> None:
    engine, consumer, producer = make(handler, [request(1, 7, "x")])
    run_until_idle(engine, consumer)
    headers = dict(producer.topic("tensor.results")[0].headers)
    assert headers["source.topic"] == TOPIC.encode()
    assert (headers["source.partition"], headers["source.offset"]) == (b"1", b"7")


def test_nothing_is_committed_before_the_broker_acknowledges_the_results(handler: TensorHandler) -> None:
    engine, consumer, producer = make(handler, [request(0, o, f"r{o}") for o in range(10)], FakeProducer(hold=True),
                                      max_batch_wait_ms=0)
    consumer.subscribe([TOPIC], engine)
    for _ in range(5):
        engine.step()
    assert len(producer.unacked) == 10
    assert consumer.committed() == {}
    producer.release()
    time.sleep(0.01)  # past the commit interval
    engine.step()
    assert consumer.committed() == {TopicPartition(TOPIC, 0): 10}


def test_a_refused_result_stops_the_worker_without_committing_it(handler: TensorHandler) -> None:
    engine, consumer, producer = make(handler, [request(0, 0, "r0")], FakeProducer(fail_topic="tensor.results"))
    with pytest.raises(FatalDeliveryError):
        engine.run()
    assert consumer.committed() == {}


class GroupCountingProducer(FakeProducer):
    def __init__(self) -> None:
        super().__init__(hold=True)
        self.groups: list[list[str]] = []

    def produce_all(self, records: Sequence[OutgoingRecord], on_delivery: DeliveryCallback) -> None:
        self.groups.append([r.topic for r in records])
        super().produce_all(records, on_delivery)


def test_a_batch_and_its_dead_letters_go_out_as_one_group_committed_when_all_of_it_is_acknowledged(
        handler: TensorHandler) -> None:
    records = [request(0, o, f"r{o}") for o in range(6)] + [request(0, 6, "bad", b"\xff")]
    producer = GroupCountingProducer()
    engine, consumer, _ = make(handler, records, producer, max_batch_wait_ms=0, max_batch_size=64)
    consumer.subscribe([TOPIC], engine)
    engine.step()
    # the dead letter was owed when the poll was decoded, the results when the batch ran
    assert producer.groups == [["tensor.requests.dlq"] + ["tensor.results"] * 6]
    first, rest = producer.unacked[:6], producer.unacked[6:]
    for _record, callback in first:
        callback(None, 1.0)
    time.sleep(0.01)  # past the commit interval
    engine.step()
    assert consumer.committed() == {}  # one record of the group is still unacknowledged
    for _record, callback in rest:
        callback(None, 2.0)
    time.sleep(0.01)
    engine.step()
    assert consumer.committed() == {TopicPartition(TOPIC, 0): 7}


def test_backpressure_pauses_at_max_in_flight_and_resumes_at_half(handler: TensorHandler) -> None:
    records = [request(p, o, f"p{p}-{o}") for p in range(2) for o in range(20)]
    engine, consumer, producer = make(handler, records, FakeProducer(hold=True), max_in_flight=8,
                                      poll_max_records=4, max_batch_wait_ms=0)
    consumer.subscribe([TOPIC], engine)
    for _ in range(5):
        engine.step()
    assert consumer.paused == consumer.partitions
    assert engine.tracker.in_flight == 8  # memory stays bounded while results are not acknowledged
    producer.release()
    engine.step()
    assert not consumer.paused


class PoisonedHandler(TensorHandler):
    """Fails any batch that contains the id 'poison', the way a model rejects one bad input."""

    def process(self, batch: list[Pending[Any]]) -> list[Outcome]:
        if any(item.value[0] == "poison" for item in batch):
            raise RuntimeError("model refused this input")
        return super().process(batch)


def test_a_failing_batch_is_retried_item_by_item_and_only_the_culprit_is_dead_lettered() -> None:
    handler = PoisonedHandler(ARTIFACTS / "digits", OnnxSettings(providers=["CPUExecutionProvider"]))
    records = [request(0, o, "poison" if o == 3 else f"r{o}") for o in range(8)]
    engine, consumer, producer = make(handler, records, max_batch_wait_ms=1000)
    run_until_idle(engine, consumer)
    assert [json.loads(r.value)["id"] for r in producer.topic("tensor.results")] == [f"r{o}" for o in range(8) if o != 3]
    (dead,) = producer.topic("tensor.requests.dlq")
    assert dict(dead.headers)["dlq.reason"] == b"inference_error"
    assert consumer.committed() == {TopicPartition(TOPIC, 0): 8}


def test_revoked_partitions_are_drained_and_committed_before_hand_over(handler: TensorHandler) -> None:
    records = [request(0, o, f"r{o}") for o in range(6)]
    engine, consumer, producer = make(handler, records, max_batch_wait_ms=10_000, max_batch_size=64)
    consumer.subscribe([TOPIC], engine)
    engine.step()  # consumed and queued, waiting for a fuller batch
    assert len(engine.batcher) == 6 and not producer.acked
    consumer.revoke({TopicPartition(TOPIC, 0)})
    assert len(producer.topic("tensor.results")) == 6
    assert consumer.committed() == {TopicPartition(TOPIC, 0): 6}
    assert engine.tracker.in_flight == 0


def test_an_empty_source_does_not_spin_the_loop(handler: TensorHandler) -> None:
    engine, consumer, _ = make(handler, [])  # returns at once, like a client whose broker is unreachable
    consumer.subscribe([TOPIC], engine)
    started, turns = time.monotonic(), 0
    while time.monotonic() - started < 0.5:
        engine.step()
        turns += 1
    assert turns <= 8, f"{turns} loop turns in 0.5 s: the loop is busy-waiting"


def test_results_owed_by_housekeeping_are_produced_without_holding_offsets(handler: TensorHandler) -> None:
    owed = [Owed("k", [Result(b'{"id": "idle"}', b"k")])]
    engine, consumer, producer = make(handler, [request(0, 0, "r0")])
    run_until_idle(engine, consumer)
    original = handler.housekeeping
    handler.housekeeping = lambda: owed  # type: ignore[method-assign]
    try:
        engine._housekeeping(time.monotonic())
        producer.poll()
    finally:
        handler.housekeeping = original  # type: ignore[method-assign]
    assert [r.value for r in producer.acked if r.value == b'{"id": "idle"}'] == [b'{"id": "idle"}']
    assert engine.tracker.in_flight == 0 and consumer.committed() == {TopicPartition(TOPIC, 0): 1}


class DeferringHandler(TensorHandler):
    """Defers the result of each request whose id starts with 'slow' to a future the test completes."""

    def __init__(self) -> None:
        super().__init__(ARTIFACTS / "digits", OnnxSettings(providers=["CPUExecutionProvider"]))
        self.futures: dict[str, Future[None]] = {}

    def process(self, batch: list[Pending[Any]]) -> list[Outcome]:
        outcomes = super().process(batch)
        for i, item in enumerate(batch):
            if item.value[0].startswith("slow"):
                future = self.futures.setdefault(item.value[0], Future())

                def finish(done: Future[None], results: Outcome = outcomes[i]) -> Outcome:
                    if done.exception() is not None:
                        raise InvalidMessage("search_failed", str(done.exception()))
                    return results

                outcomes[i] = Deferred(future, finish)
        return outcomes


def ids(producer: FakeProducer) -> list[str]:
    return [json.loads(r.value)["id"] for r in producer.topic("tensor.results")]


def test_a_deferred_result_holds_its_key_and_its_offset_but_not_other_keys() -> None:
    handler = DeferringHandler()
    records = [request(0, 0, "r0"), request(0, 1, "slow1"), request(0, 2, "r2"), request(1, 0, "q0")]
    engine, consumer, producer = make(handler, records, max_batch_wait_ms=0)
    consumer.subscribe([TOPIC], engine)
    for _ in range(3):
        engine.step()
        time.sleep(0.002)
    assert sorted(ids(producer)) == ["q0", "r0"]  # r2 waits behind slow1 (same key); q0 does not
    engine._commit()
    assert consumer.committed() == {TopicPartition(TOPIC, 0): 1, TopicPartition(TOPIC, 1): 1}
    handler.futures["slow1"].set_result(None)
    engine.step()
    time.sleep(0.002)
    engine.step()
    engine._commit()
    assert [i for i in ids(producer) if not i.startswith("q")] == ["r0", "slow1", "r2"]
    assert consumer.committed() == {TopicPartition(TOPIC, 0): 3, TopicPartition(TOPIC, 1): 1}


def test_a_deferred_result_that_fails_goes_to_the_dlq_and_releases_its_key() -> None:
    handler = DeferringHandler()
    engine, consumer, producer = make(handler, [request(0, 0, "slow0"), request(0, 1, "r1")], max_batch_wait_ms=0)
    consumer.subscribe([TOPIC], engine)
    engine.step()
    handler.futures["slow0"].set_exception(RuntimeError("child died"))
    run_until_idle(engine, consumer)
    (dead,) = producer.topic("tensor.requests.dlq")
    assert dict(dead.headers)["dlq.reason"] == b"search_failed" and ids(producer) == ["r1"]
    assert consumer.committed() == {TopicPartition(TOPIC, 0): 2}


def test_draining_waits_for_deferred_results() -> None:
    handler = DeferringHandler()
    engine, consumer, producer = make(handler, [request(0, 0, "slow0"), request(0, 1, "r1")], max_batch_wait_ms=0)
    consumer.subscribe([TOPIC], engine)
    engine.step()
    threading.Timer(0.05, handler.futures["slow0"].set_result, [None]).start()
    consumer.revoke({TopicPartition(TOPIC, 0)})  # hand-over drains: nothing may be left behind
    assert ids(producer) == ["slow0", "r1"]
    assert consumer.committed() == {TopicPartition(TOPIC, 0): 2}


def test_a_deferred_result_owed_by_housekeeping_holds_its_key_until_it_is_done(handler: TensorHandler) -> None:
    """An idle stream's final still being searched: a chunk of that stream arriving meanwhile is answered
    after it; other keys are not held, and no offset waits on the owed result itself."""
    searched: Future[None] = Future()
    owed = [Owed("key-0", Deferred(searched, lambda _: [Result(b'{"id": "idle"}', b"key-0")]))]
    engine, consumer, producer = make(handler, [request(0, 0, "r0"), request(1, 0, "q0")], max_batch_wait_ms=0)
    consumer.subscribe([TOPIC], engine)
    original = handler.housekeeping
    handler.housekeeping = lambda: owed  # type: ignore[method-assign]
    try:
        engine._housekeeping(time.monotonic())
    finally:
        handler.housekeeping = original  # type: ignore[method-assign]
    for _ in range(3):
        engine.step()
    engine._commit()
    assert ids(producer) == ["q0"] and consumer.committed() == {TopicPartition(TOPIC, 1): 1}
    searched.set_result(None)
    run_until_idle(engine, consumer)
    assert ids(producer) == ["q0", "idle", "r0"]
    assert consumer.committed() == {TopicPartition(TOPIC, 0): 1, TopicPartition(TOPIC, 1): 1}


def test_a_latency_target_sets_the_batchers_limits_from_measured_batches(handler: TensorHandler) -> None:
    records = [request(p, o, f"p{p}-{o}") for p in range(2) for o in range(400)]
    engine, consumer, producer = make(handler, records, batch_latency_target_ms=0.5, max_batch_size=64,
                                      poll_max_records=37)
    run_until_idle(engine, consumer)
    assert len(producer.topic("tensor.results")) == 800
    limits = engine.adaptive
    assert limits is not None and limits.per_item_s > 0
    assert (engine.batcher.max_size, engine.batcher.max_wait_s) == (limits.max_size, limits.max_wait_s)
    assert 1 <= engine.batcher.max_size < 64  # half of 0.5 ms holds fewer than 64 digits
    assert engine.batcher.max_size == max(1, min(64, int((0.00025 - limits.fixed_s - limits.spread_s) // limits.per_item_s)))
