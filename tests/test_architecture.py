"""The rooms and their doors (docs/architecture.md), checked on the source.

Every import of the package's own modules, at module level or inside a function, is
read from the source with ``ast``; the rules below are the ones the architecture page
states. A new import that breaks one fails here with the module and the import named.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Set

import pytest

PACKAGE = "prometheus_cluster_exporter"
ROOT = Path(__file__).resolve().parent.parent / "src" / PACKAGE

#: Modules that render or serve: they show values, never fetch them.
PRESENTATION = {"exposition", "status", "http", "httpconn", "httpmsg", "workers", "webconfig"}
#: Pure rooms: no sources, no collector, no presentation.
PURE = {
    "attribution",
    "idsort",
    "jobid",
    "jobidre",
    "joinrules",
    "budget",
    "families",
    "records",
    "metrics",
    "report",
    "topjobs",
    "counters",
    "usage",
    "usageperiod",
    "usagerender",
    "usagehtml",
}
#: What only the entry point may use.
ENTRY = {"cli", "wiring", "flags", "flagtable"}
MAX_LINES = 340
MAX_FUNCTION_LINES = 60


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or PACKAGE


def _imports(path: Path) -> Set[str]:
    """The package's own modules ``path`` imports, as dotted names below the package."""
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == PACKAGE:  # from prometheus_cluster_exporter import attribution
                found.update(alias.name for alias in node.names)
            elif node.module.startswith(PACKAGE + "."):
                found.add(node.module[len(PACKAGE) + 1 :])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE + "."):
                    found.add(alias.name[len(PACKAGE) + 1 :])
    found.discard("__version__")
    return found


GRAPH: Dict[str, Set[str]] = {
    _module_name(path): _imports(path) for path in sorted(ROOT.rglob("*.py"))
}


def _is_source(module: str) -> bool:
    return module == "sources" or module.startswith("sources.")


def test_the_graph_was_read() -> None:
    assert {"collector", "cli", "sources.prometheus", "records"} <= set(GRAPH)
    assert "records" in GRAPH["collector"]
    assert "sources.demo" in GRAPH["wiring"]


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_follow_the_rooms(module: str) -> None:
    imported = GRAPH[module]
    if module == "collector":
        assert not {m for m in imported if _is_source(m)}, "the collector knows no source"
        assert not imported & (PRESENTATION | ENTRY)
    if module in PRESENTATION:
        assert not {m for m in imported if _is_source(m)}, f"{module} imports a source"
        assert "collector" not in imported and not imported & ENTRY
    if module in PURE:
        assert not {m for m in imported if _is_source(m)}
        assert not imported & (PRESENTATION | ENTRY | {"collector", "runner"})
    if _is_source(module):
        assert not imported & (PRESENTATION | ENTRY | PURE - {"records"} | {"collector"}), (
            f"{module} reaches out of the sources"
        )
    if module not in ("cli", "__main__"):
        assert "cli" not in imported
    if module != "cli":
        assert not imported & {"wiring", "flags"} or (
            module == "wiring" and "flags" not in imported
        )


def test_only_the_wiring_knows_the_concrete_sources() -> None:
    users = {
        module
        for module, imported in GRAPH.items()
        if any(_is_source(m) for m in imported) and not _is_source(module)
    }
    # The report command is an entry point of its own, with one source: the query client.
    assert users == {"wiring", "usagecli"}
    assert {m for m in GRAPH["usagecli"] if _is_source(m)} == {"sources.promhttp"}


def test_no_import_cycles() -> None:
    state: Dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        if state.get(module) == 2:
            return
        assert state.get(module) != 1, " -> ".join([*path, module])
        state[module] = 1
        for dep in sorted(GRAPH.get(module, ())):
            if dep in GRAPH:
                visit(dep, [*path, module])
        state[module] = 2

    for module in sorted(GRAPH):
        visit(module, [])


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.py")), ids=lambda p: p.name)
def test_rooms_stay_small_and_say_what_they_are_for(path: Path) -> None:
    text = path.read_text()
    tree = ast.parse(text)
    if path.name != "__main__.py" and text.strip():
        assert ast.get_docstring(tree), f"{path.name} has no module docstring"
    assert len(text.splitlines()) <= MAX_LINES
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{path.name}: {node.name} has {length} lines"
