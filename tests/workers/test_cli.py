"""Every subcommand documents itself, and the demo (the README's first command) really runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from workers.cli import build_parser


def subcommands() -> list[str]:
    parser = build_parser()
    return sorted(next(a for a in parser._actions if a.dest == "command").choices)


@pytest.mark.parametrize("command", subcommands())
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: workers " + command in capsys.readouterr().out


@pytest.mark.integration
def test_demo_shows_results_dlq_and_metrics_then_exits_cleanly() -> None:
    from workers.devtools.broker import free_port_block

    done = subprocess.run(  # four workers on metrics ports base..base+3
        [sys.executable, "-m", "workers", "demo", "--duration", "3", "--rate", "30", "--metrics-port", str(free_port_block(4))],
        capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "truth" in out and " ok " in out
    assert "DLQ invalid_json" in out and "[bot   ] DLQ missing_field" in out
    assert "workers_messages_out_total" in out and "workers_model_info" in out
    assert "[clicks] DLQ unknown_event_type" in out and "buy p=" in out
    assert "[asr   ] DLQ bad_audio" in out and "[asr   ] talk-0-" in out
    assert "workers drained and exited with codes [0, 0, 0, 0]" in out


@pytest.mark.integration
def test_broker_creates_topics_send_and_tail_round_trip_and_ctrl_c_stops_it(tmp_path) -> None:
    import json
    import signal

    from workers.devtools.broker import free_port

    import time

    port = free_port()
    log = tmp_path / "broker.log"  # a file, not a pipe: an unread pipe fills up and blocks the broker's exit
    broker = subprocess.Popen([sys.executable, "-m", "workers", "broker", "--port", str(port)],
                              stdout=open(log, "w"), stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while "broker ready" not in log.read_text() and time.monotonic() < deadline and broker.poll() is None:
            time.sleep(0.2)
        lines = log.read_text().splitlines()
        assert any("broker ready" in line for line in lines), lines
        assert any("tensor.requests.dlq" in line and "asr.audio" in line for line in lines), lines
        env = {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"}
        source = tmp_path / "in.jsonl"
        source.write_text("".join(json.dumps({"id": f"m{i}", "n": i}) + "\n" for i in range(5)))
        sent = subprocess.run([sys.executable, "-m", "workers", "send", "tensor.requests", str(source), "--key-field", "id"],
                              capture_output=True, text=True, timeout=60, env=os.environ | env)
        assert sent.returncode == 0 and "5 records acknowledged" in sent.stderr, sent.stderr
        tailed = subprocess.run([sys.executable, "-m", "workers", "tail", "tensor.requests", "--from-beginning",
                                 "--max", "5", "--idle-timeout", "20"],
                                capture_output=True, text=True, timeout=60, env=os.environ | env)
        rows = [json.loads(line) for line in tailed.stdout.splitlines()]
        assert sorted(json.loads(r["value"])["id"] for r in rows) == [f"m{i}" for i in range(5)]
        assert all(r["key"] == json.loads(r["value"])["id"] for r in rows)
    finally:
        broker.send_signal(signal.SIGINT)
        assert broker.wait(20) == 0
