"""The changelog's promises, through the in-memory transport with the real bot model: results before state,
commits after both, and a crash anywhere gives the results a run without one gives."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from models import ARTIFACTS
from tests.fakes import FakeConsumer, FakeProducer
from workers.bot.handler import BotHandler
from workers.engine.changelog import OFFSET_HEADER, Changelog
from workers.engine.engine import StreamEngine
from workers.settings import EngineSettings, load_settings
from workers.transport.records import OutgoingRecord, Record, TopicPartition

pytestmark = pytest.mark.skipif(not (ARTIFACTS / "bot" / "model.onnx").exists(), reason="bot model not built")
TOPIC, REPLIES, STATE = "chat.messages", "chat.replies", "workers-bot-bot-state"
TEXTS = ["my card hasn't arrived yet", "what is the weather in Paris tomorrow", "give me a recipe for lasagna",
         "how do I activate my new card?", "tell me a joke", "sing me a song", "I lost my card"]


class ChangelogReader:
    """Reads what a fake producer got acknowledged on the changelog, as a broker would hand it back."""

    def __init__(self, log: list[OutgoingRecord]) -> None:
        self.log = log

    def read_to_end(self, topic: str, partitions: list[int], since_ms: int | None = None) -> Iterator[Record]:
        for offset, r in enumerate(self.log):
            if r.topic == topic and r.partition in partitions:
                yield Record(topic, r.partition or 0, offset, r.key, r.value, list(r.headers), 2_000_000_000_000)

    def close(self) -> None:
        pass


def messages() -> list[Record]:
    """Three conversations over two partitions, interleaved; fallbacks pile up to a hand-off in some."""
    out, offsets = [], {0: 0, 1: 0}
    for turn in range(len(TEXTS)):
        for n, conversation in enumerate(["c1", "c2", "c3"]):
            partition = n % 2
            text = TEXTS[(turn + n) % len(TEXTS)]
            body = {"conversation_id": conversation, "message_id": f"{conversation}-{turn}", "text": text, "ts": 1.0}
            out.append(Record(TOPIC, partition, offsets[partition], conversation.encode(), json.dumps(body).encode()))
            offsets[partition] += 1
    return out


def engine_for(records: list[Record], producer: FakeProducer, log: list[OutgoingRecord], **settings: Any) -> StreamEngine:
    consumer = FakeConsumer(records, {TopicPartition(TOPIC, p) for p in range(2)})
    changelog = Changelog(STATE, "bot", lambda: ChangelogReader(log))
    engine = StreamEngine(BotHandler(ARTIFACTS / "bot", load_settings()),
                          EngineSettings(max_batch_size=4, **settings), consumer, producer, changelog=changelog)
    consumer.subscribe([TOPIC], listener=engine)  # what run() does first: assignment restores the state
    return engine


def replies(records: list[OutgoingRecord]) -> dict[str, dict[str, Any]]:
    """By message id, what the reply says: latency aside, and the confidence too (it moves in the third
    decimal with the batch a message shares: the texts are padded to the batch's longest)."""
    out = {}
    for r in records:
        if r.topic == REPLIES:
            body = json.loads(r.value or b"{}")
            out[body["message_id"]] = {k: v for k, v in body.items() if k not in ("latency", "confidence")}
    return out


@pytest.fixture(scope="module")
def reference() -> dict[str, dict[str, Any]]:
    producer = FakeProducer()
    engine = engine_for(messages(), producer, [])
    engine.run(until=lambda: not engine.consumer.pending and engine.tracker.in_flight == 0)  # type: ignore[attr-defined]
    return replies(producer.acked)


def records_counted() -> float:
    return REGISTRY.get_sample_value("workers_state_changelog_records_total", {"worker": "bot"}) or 0.0


def bytes_counted() -> float:
    return REGISTRY.get_sample_value("workers_state_changelog_bytes_total", {"worker": "bot"}) or 0.0


def test_a_state_record_goes_out_after_its_replies_and_the_offset_waits_for_both() -> None:
    records_before, bytes_before = records_counted(), bytes_counted()
    producer = FakeProducer(hold=True)
    engine = engine_for(messages()[:2], producer, [], commit_interval_s=0.001)
    engine.step()
    assert {r.topic for r, _ in producer.unacked} == {REPLIES}, "state before its results are acknowledged"
    results, producer.unacked = producer.unacked, []
    for record, callback in results:
        producer.acked.append(record)
        callback(None, 0.0)
    state = [r for r, _ in producer.unacked]
    assert [(r.key, r.partition, dict(r.headers)[OFFSET_HEADER]) for r in state] == [(b"c1", 0, b"0"), (b"c2", 1, b"0")]
    engine.step()
    assert engine.consumer.committed() == {}, "committed before the state was acknowledged"  # type: ignore[attr-defined]
    assert REGISTRY.get_sample_value("workers_state_changelog_pending", {"worker": "bot"}) == 2
    producer.release()
    engine.step()
    assert REGISTRY.get_sample_value("workers_state_changelog_pending", {"worker": "bot"}) == 0
    assert engine.consumer.committed() == {TopicPartition(TOPIC, 0): 1, TopicPartition(TOPIC, 1): 1}  # type: ignore[attr-defined]
    # counted once a loop turn, not once a record: both by the end of the turn that sent them
    assert records_counted() == records_before + 2
    assert bytes_counted() == bytes_before + sum(len(r.value or b"") for r in state)


@pytest.mark.parametrize("state_lost", [False, True], ids=["state-kept", "last-state-writes-lost"])
def test_a_crash_anywhere_gives_the_replies_of_a_run_without_one(reference: dict[str, dict[str, Any]], state_lost: bool) -> None:
    records = messages()
    producer = FakeProducer(hold=True)
    log: list[OutgoingRecord] = []
    first = engine_for(records[:12], producer, log, commit_interval_s=0.001, poll_max_records=4)
    for step in range(4):  # a batch of four per step; a batch's state goes out one step and is committed the next
        if step < 3:
            first.step()  # the fourth turn only acknowledges: the crash comes before the next commit
        unacked, producer.unacked = producer.unacked, []
        for record, callback in unacked:
            if state_lost and record.topic == STATE and len(log) >= 5:
                continue  # the crash takes these with it
            producer.acked.append(record)
            if record.topic == STATE:
                log.append(record)
            callback(None, 0.0)
    before = replies(producer.acked)
    assert len(before) == 12
    # the crash: a fresh worker, the input from the committed offsets on, the changelog as it was left
    committed = first.consumer.committed()  # type: ignore[attr-defined]
    assert 0 < sum(committed.values()) < 12
    second_producer = FakeProducer()
    second = engine_for([r for r in records if r.offset >= committed.get(r.tp, 0)], second_producer, log)
    second.run(until=lambda: not second.consumer.pending and second.tracker.in_flight == 0)  # type: ignore[attr-defined]
    after = replies(second_producer.acked)
    redone = set(before) & set(after)
    assert (len(redone) > 0) == state_lost, "an input the restored state reflects was applied again"
    assert before | after == reference
    assert {k: after[k] for k in redone} == {k: before[k] for k in redone}


def test_expired_conversations_are_deleted_from_the_changelog() -> None:
    producer = FakeProducer()
    engine = engine_for(messages()[:3], producer, [])
    engine.run(until=lambda: not engine.consumer.pending and engine.tracker.in_flight == 0)  # type: ignore[attr-defined]
    engine.handler.state.ttl_s = 0.0  # type: ignore[attr-defined]
    engine.handler.housekeeping()
    engine.changelog.tick()  # type: ignore[union-attr]
    engine.producer.flush(1)
    state = [r for r in producer.acked if r.topic == STATE]
    assert [(r.key, r.value) for r in state[-3:]] == [(b"c1", None), (b"c2", None), (b"c3", None)]
    assert [dict(r.headers)[OFFSET_HEADER] for r in state[-3:]] == [b"0", b"0", b"1"]  # re-reads up to it are skipped


class LeakyConsumer(FakeConsumer):
    """Hands over a record of a partition revoked after it was fetched, as librdkafka's ``poll()`` did when the
    rebalance was served in the ``consume()`` after it."""

    def poll(self, timeout_s: float, max_records: int) -> list[Record]:
        out, self.pending = self.pending[:max_records], self.pending[max_records:]
        return out


def test_a_record_of_a_revoked_partition_is_not_applied_and_writes_no_state() -> None:
    records = messages()
    producer, log = FakeProducer(), []
    engine = engine_for(records[:3], producer, log)
    engine.run(until=lambda: not engine.consumer.pending and engine.tracker.in_flight == 0)  # type: ignore[attr-defined]
    leaky = LeakyConsumer([r for r in records[3:6] if r.partition == 0], {TopicPartition(TOPIC, 1)})
    leaky.listener, engine.consumer = engine, leaky
    engine.on_partitions_revoked({TopicPartition(TOPIC, 0)})  # partition 0 moved to another worker
    written = len(producer.topic(STATE))
    assert engine.handler.state.peek("c1") is None  # type: ignore[attr-defined]
    for _ in range(3):
        engine.step()
    engine.drain(1)
    assert engine.tracker.in_flight == 0
    assert len(replies(producer.acked)) == 3, "a record of a revoked partition was answered"
    assert len(producer.topic(STATE)) == written, "a revoked partition's key was written afresh to the changelog"
    assert engine.handler.state.peek("c1") is None  # type: ignore[attr-defined]
