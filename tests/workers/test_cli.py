"""Every subcommand documents itself, and the demo (the README's first command) really runs."""

from __future__ import annotations

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
    from workers.broker import free_port

    done = subprocess.run(
        [sys.executable, "-m", "workers", "demo", "--duration", "3", "--rate", "30", "--metrics-port", str(free_port())],
        capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "truth" in out and " ok " in out
    assert "DLQ  invalid_json" in out
    assert "workers_messages_out_total" in out and "workers_model_info" in out
    assert "worker drained and exited with code 0" in out
