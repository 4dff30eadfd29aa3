"""The restore benchmark runs end to end: a changelog written through the real broker, read back with each
client into a store holding every key once."""

import pytest

from workers.devtools.bench.restore import run

pytestmark = pytest.mark.integration


def test_restore_bench_reads_back_every_key_with_both_clients() -> None:
    rows = run([300], ["confluent", "kafka-python"], record_bytes=64)
    assert [(r["client"], r["keys"], r["records"]) for r in rows] == [("confluent", 300, 600), ("kafka-python", 300, 600)]
    assert all(r["seconds"] > 0 and r["keys_per_s"] > 0 for r in rows)
