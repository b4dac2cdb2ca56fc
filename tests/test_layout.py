"""The house rules, checked on the source: layers import downwards only, and no circles."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("actors", "pipelines", "cluster")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def project_modules() -> dict[str, set[str]]:
    mods = {module_name(p): imports(p) for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    return {m: {i for i in deps if i in mods and i != m} | {i.split(".")[0] for i in deps
                                                             if i.split(".")[0] == "ray"}
            for m, deps in mods.items()}


def test_elements_never_import_ray_or_the_runtime():
    for mod, deps in project_modules().items():
        if mod.startswith("actors"):
            bad = sorted(d for d in deps if d == "ray" or d.startswith("pipelines"))
            assert not bad, f"{mod} imports {bad}: elements must not know the runtime"


def test_only_the_runtime_imports_ray():
    for mod, deps in project_modules().items():
        if "ray" in deps:
            assert mod.startswith("pipelines.runtime"), f"{mod} imports ray"


def test_the_runtime_never_imports_the_ready_made_pipelines():
    for mod, deps in project_modules().items():
        if mod.startswith("pipelines.runtime"):
            bad = sorted(d for d in deps if d.startswith("pipelines.")
                         and not d.startswith("pipelines.runtime"))
            assert not bad, f"{mod} imports {bad}"


def test_no_import_circles():
    graph = {m: {d for d in deps if d != "ray"} for m, deps in project_modules().items()}
    # A package's __init__ re-exporting its own modules is not a circle of the design.
    for m in graph:
        graph[m] = {d for d in graph[m] if not (m == d.rsplit(".", 1)[0] or
                                                 d == m.rsplit(".", 1)[0])}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycle = [*stack[stack.index(d):], d]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
