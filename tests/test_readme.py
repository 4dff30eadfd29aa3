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


def test_readme_stays_short_and_its_links_and_the_docs_links_resolve() -> None:
    import re

    assert len((REPO / "README.md").read_bytes()) <= 12 * 1024
    pages = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
    broken = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith(("http://", "https://")) and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert broken == []


def test_every_docs_page_is_reachable_from_the_readme() -> None:
    import re

    seen, todo = set(), [REPO / "README.md"]
    while todo:
        page = todo.pop()
        if page in seen or page.suffix != ".md" or not page.is_file():
            continue
        seen.add(page)
        for target in re.findall(r"\]\(([^)#\s]+)", page.read_text()):
            path = (page.parent / target).resolve()
            todo += sorted(path.glob("*.md")) if path.is_dir() else [path]
    assert set((REPO / "docs").rglob("*.md")) <= seen
