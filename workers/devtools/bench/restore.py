"""How long a worker takes to restore its per-key state from the changelog: N keys of ``--record-bytes``
each (default 598: a click session with the committed model) in a 4-partition changelog, read back by
:meth:`workers.engine.changelog.Changelog.restore` as on assignment, with each client. States are opaque
bytes here (a workload's own decode comes on top: ~2 us per click session).

``python -m workers.devtools.bench.restore --keys 10000,100000`` prints a table (``--json``: the figures);
each key is written twice (an older and a newer state), so restore also picks the latest of several.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from workers.devtools.broker import EmbeddedBroker, free_port
from workers.engine.changelog import OFFSET_HEADER, Changelog, changelog_config
from workers.engine.state import KeyedState
from workers.settings import KafkaSettings
from workers.transport.factory import ensure_topics, make_partition_reader, make_producer
from workers.transport.records import OutgoingRecord

PARTITIONS = 4


class _Bytes:
    """States as they are: opaque bytes."""

    def encode(self, state: bytes) -> bytes:
        return state

    def decode(self, data: bytes) -> bytes:
        return bytes(data)


class _Owner:
    """What :meth:`Changelog.bind` reads from a handler: its state, codec and model version."""

    name = "restore-bench"
    state_belongs_to_model = False
    state_codec = _Bytes()
    state_write_interval_s = 0.0

    def __init__(self, store: KeyedState[Any]) -> None:
        self.state = store


def write_changelog(kafka: KafkaSettings, topic: str, keys: int, record_bytes: int) -> None:
    """Two states per key, the second newer."""
    rng = np.random.default_rng(0)
    producer = make_producer(kafka, "restore-bench")
    for _version in range(2):
        for k in range(keys):
            value = rng.bytes(record_bytes)
            producer.produce(OutgoingRecord(topic, value, f"s-{k}".encode(), [(OFFSET_HEADER, str(k).encode())],
                                            k % PARTITIONS), lambda error, _at: None if error is None else print(error))
            if k % 10_000 == 0:
                producer.poll()
    assert producer.flush(120), "the changelog was not acknowledged"
    producer.close()


def time_restore(kafka: KafkaSettings, topic: str, keys: int) -> dict[str, float]:
    store: KeyedState[Any] = KeyedState(bytes, ttl_s=3600, max_keys=keys * 2)
    changelog = Changelog(topic, "restore-bench", lambda: make_partition_reader(kafka, "restore-bench"))
    changelog.bind(_Owner(store))  # type: ignore[arg-type]
    started = time.perf_counter()
    restored = changelog.restore(set(range(PARTITIONS)), ttl_s=3600)
    seconds = time.perf_counter() - started
    assert restored == keys == len(store), (restored, keys, len(store))
    return {"seconds": round(seconds, 3), "keys_per_s": round(keys / seconds)}


def run(key_counts: list[int], clients: list[str], record_bytes: int) -> list[dict[str, Any]]:
    rows = []
    with EmbeddedBroker(port=free_port()) as broker:
        for keys in key_counts:
            kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, client="confluent")
            topic = f"restore-bench-{keys}-state"
            ensure_topics(kafka, {topic: PARTITIONS}, configs={topic: changelog_config(3600)})
            started = time.perf_counter()
            write_changelog(kafka, topic, keys, record_bytes)
            written_s = time.perf_counter() - started
            for client in clients:
                figures = time_restore(KafkaSettings(bootstrap_servers=broker.bootstrap_servers, client=client), topic, keys)
                rows.append({"keys": keys, "records": 2 * keys, "record_bytes": record_bytes, "client": client,
                             "write_s": round(written_s, 2)} | figures)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", default="10000,100000", help="key counts, comma-separated")
    parser.add_argument("--clients", default="confluent,kafka-python")
    parser.add_argument("--record-bytes", type=int, default=598, help="size of one state record")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = run([int(k) for k in args.keys.split(",")], args.clients.split(","), args.record_bytes)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'keys':>8}{'records':>9}{'bytes/rec':>10}{'client':>14}{'restore s':>11}{'keys/s':>10}")
    for r in rows:
        print(f"{r['keys']:>8}{r['records']:>9}{r['record_bytes']:>10}{r['client']:>14}{r['seconds']:>11}{r['keys_per_s']:>10,}")


if __name__ == "__main__":
    main()
