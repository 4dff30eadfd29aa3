from workers.engine.handler import Pending, latency_fields
from workers.transport.records import Record


def pending(offset: int, timestamp_ms: int | None, received_at: float) -> Pending[None]:
    return Pending(Record("t", 0, offset, None, b"x", [], timestamp_ms), "k", None, received_at, 0.0)


def test_a_batchs_latency_fields_are_each_items_own_in_milliseconds() -> None:
    now = 1_800_000_000.25
    items = [pending(0, 1_800_000_000_000, now - 0.0123456), pending(1, None, now - 0.5), pending(2, 0, now)]
    fields = latency_fields(items, 0.0021234, now)
    assert fields[0] == {"received_to_result_ms": 12.346, "inference_ms": 2.123, "event_to_result_ms": 250.0}
    assert fields[1] == {"received_to_result_ms": 500.0, "inference_ms": 2.123}  # no timestamp: no event field
    assert fields[2] == {"received_to_result_ms": 0.0, "inference_ms": 2.123}  # timestamp 0: unknown, not 1970
    assert items[1].latency_fields(0.0021234, now) == fields[1]
