"""The README's two commands are the project's contract: CI must run exactly the second one."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index("```sh")
    end = lines.index("```", start)
    return [line for line in lines[start + 1 : end] if line and not line.startswith("#")]


def test_readme_opens_with_exactly_two_commands_demo_then_tests() -> None:
    demo, tests = readme_commands()
    assert demo.endswith("workers demo")
    assert "pytest" in tests


def test_ci_runs_the_readmes_test_command() -> None:
    _, tests = readme_commands()
    ci = (REPO / ".ci" / "run").read_text()
    assert tests in ci.splitlines()
