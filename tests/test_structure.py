"""The shape of the code: the core names no workload, and the import graph has no cycle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from workers.registry import workloads

REPO = Path(__file__).resolve().parent.parent
CORE = ["workers/engine", "workers/transport", "workers/runtime", "workers/toolkit", "workers/devtools",
        "workers/__init__.py", "workers/__main__.py", "workers/cli.py", "workers/client.py", "workers/garbage_collection.py",
        "workers/http.py",
        "workers/metrics.py", "workers/plugin.py", "workers/registry.py", "workers/serve.py", "workers/settings.py",
        "workers/supervise.py", "workers/topics.py"]
"""Everything under workers/ that is not a workload package."""


def python_files(*roots: str) -> list[Path]:
    found: list[Path] = []
    for root in roots:
        path = REPO / root
        found += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return found


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_core_list_covers_everything_but_the_workload_packages() -> None:
    workload_packages = {REPO / "workers" / name for name in workloads()}
    everything = {p for p in (REPO / "workers").rglob("*.py") if not any(pkg in p.parents for pkg in workload_packages)}
    assert everything == set(python_files(*CORE))


def test_no_core_module_names_a_workload() -> None:
    names = sorted(workloads())
    assert {"asr", "bot", "clicks", "tensor"} <= set(names)
    # ONNX Runtime's type strings ("tensor(float)") are not the tensor workload
    pattern = re.compile(r"\b(" + "|".join(names) + r")\b(?!\()", re.IGNORECASE)
    hits = [f"{path.relative_to(REPO)}:{n}: {line.strip()}" for path in python_files(*CORE)
            for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert hits == []


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Modules of ``known`` that ``path`` imports anywhere (inside functions too), except for type checking."""
    found: set[str] = set()

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found.update(filter(None, map(resolve, names)))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return found - {module_name(path)}


def test_the_import_graph_has_no_cycle() -> None:
    files = python_files("workers", "models", "export")
    known = {module_name(p) for p in files}
    graph = {module_name(p): imports_of(p, known) for p in files}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                walk(nxt, path + [node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            walk(module, [])
    assert cycles == []


WITHOUT_DEVTOOLS = """
import importlib.abc, sys

class Missing(importlib.abc.MetaPathFinder):  # as in deploy/Dockerfile's image, which leaves workers/devtools out
    def find_spec(self, name, path, target=None):
        if name == "workers.devtools" or name.startswith("workers.devtools."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, Missing())
from workers import registry
from workers.cli import build_parser
import workers.serve

verbs = next(a for a in build_parser()._actions if a.dest == "command").choices
assert "serve" in verbs and "demo" not in verbs and "broker" not in verbs, sorted(verbs)
for name in registry.workloads():
    registry.handler_class(name)
build_parser().parse_args(["serve", "tensor"])
print("ok", sorted(verbs))
"""


def test_a_worker_image_serves_without_the_development_tools() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", WITHOUT_DEVTOOLS], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("ok"), done.stderr[-3000:]
    assert "bench" not in done.stdout  # its runner is a development tool


def test_the_dockerfiles_leave_the_development_tools_out() -> None:
    for name in ("Dockerfile", "Dockerfile.gpu"):
        text = (REPO / "deploy" / name).read_text()
        assert "rm -rf workers/devtools" in text, name
