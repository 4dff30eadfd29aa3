"""The drain benchmark (the worker alone on a backlog, what profiling runs) runs end to end through the real
broker: every message answered on the output topic, each once, and its figures printed."""

import gc
import json

import pytest

from workers.devtools.bench import drain

pytestmark = pytest.mark.integration


def test_drain_answers_the_whole_backlog(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    answered: list[int] = []
    real = drain.drain

    def counted(worker, settings, n, seed, profile):  # type: ignore[no-untyped-def]
        report = real(worker, settings, n, seed, profile)
        answered.append(_count(settings, f"drain-{seed}.out"))
        return report

    monkeypatch.setattr(drain, "drain", counted)
    thresholds = gc.get_threshold()
    assert drain.main(["clicks", "--messages", "1200", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert answered == [1200]
    (figures,) = report["drains"]
    assert figures["messages"] == 1200 and figures["msg_per_s"] > 0 and figures["cpu_us_per_msg"] > 0
    assert figures["gc_us_per_msg"] >= 0
    assert gc.get_threshold() == thresholds and gc.get_freeze_count() == 0  # the test process's collector as it was


def _count(settings, topic: str) -> int:  # type: ignore[no-untyped-def]
    from workers.transport.factory import make_reader

    reader = make_reader(settings.kafka, [topic], client_id="drain-check")
    seen: list[tuple[int, int]] = []
    try:
        for _ in range(20):
            records = reader.poll(0.5, 5000)
            for r in records:
                seen.append((int(r.header("source.partition") or -1), int(r.header("source.offset") or -1)))
            if not records and seen:
                break
    finally:
        reader.close()
    assert len(set(seen)) == len(seen), "an input answered twice"
    return len(seen)
