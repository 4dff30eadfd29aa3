import math

from prometheus_client import CollectorRegistry, Histogram

from workers.metrics import LATENCY_BUCKETS, observe_many


def _samples(histogram: Histogram) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels.get("le", "")): s.value for metric in histogram.collect() for s in metric.samples}


def test_observe_many_matches_observing_one_by_one() -> None:
    values = [0.0, 0.0004, 0.001, 0.0010001, 0.03, 0.25, 7.0, 31.0, 1e9, -1.0, math.nan, 0.001]
    registry = CollectorRegistry()
    one = Histogram("one", "h", buckets=LATENCY_BUCKETS, registry=registry)
    many = Histogram("many", "h", buckets=LATENCY_BUCKETS, registry=registry)
    for value in values:
        one.observe(value)
    observe_many(many, values[:5])
    observe_many(many, values[5:])
    observe_many(many, [])
    got = {(name.replace("many", "one"), le): v for (name, le), v in _samples(many).items()}
    want = _samples(one)
    assert set(got) == set(want)
    for key, value in want.items():
        assert got[key] == value or (math.isnan(value) and math.isnan(got[key])), key
    assert want[("one_bucket", "0.001")] == 5  # cumulative, and a bound is inclusive (le): -1, 0, 0.0004, 0.001 twice
