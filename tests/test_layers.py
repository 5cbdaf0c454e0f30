"""The package's layers only look down: no upward import, no cycle, no private name
crossing a module boundary (lazy imports inside functions included).

Rooms, bottom to top (README, "How it is built"):
  core       graph, plan, retry, errors, results, progress, address, annotations, tracebacks,
             pickling, gcpause
  tools      visualize, progress display, runfile, report: use only the core
  local      executors.base and the local executors: use only the core
  adapter    dask_adapter.*: everything that speaks to dask; only the core below it
  dask       executors.dask: the core, the local executors' base, the adapter
  julia      pydispatch.julia.*: the core and the adapter
  top        commands, cli, the package itself: anything
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "pydispatch"

CORE = {
    "errors",
    "annotations",
    "address",
    "graph",
    "plan",
    "retry",
    "results",
    "progress",
    "tracebacks",
    "pickling",
    "gcpause",
}
TOOLS = {"visualize", "progress_display", "runfile", "report", "notebook"}
ALLOWED = {
    "core": {"core"},
    "tools": {"core", "tools"},
    "local": {"core", "local"},
    "adapter": {"core", "adapter"},
    "dask": {"core", "local", "adapter", "dask"},
    "julia": {"core", "adapter", "julia"},
    "top": {"core", "tools", "local", "adapter", "dask", "julia", "top"},
}


def room(module: str) -> str:
    parts = module.split(".")[1:]  # without "pydispatch"
    if not parts:
        return "top"
    if parts[0] in CORE and len(parts) == 1:
        return "core"
    if parts[0] in TOOLS:
        return "tools"
    if parts[0] == "dask_adapter":
        return "adapter"
    if parts[0] == "julia":
        return "julia"
    if parts[:2] == ["executors", "dask"]:
        return "dask"
    if parts[0] == "executors":
        return "local"
    return "top"  # commands, cli, __main__


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imports(module: str, path: Path, known: set[str]) -> list[tuple[str, str, int]]:
    """(imported pydispatch module, imported name or "", line) for every import in `path`."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, "", node.lineno) for a in node.names if a.name in known]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("pydispatch"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:  # `from . import submodule`
                    found.append((sub, "", node.lineno))
                else:
                    found.append((target, alias.name, node.lineno))
    return found


GRAPH = {m: imports(m, p, set(modules())) for m, p in modules().items()}


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_only_look_down(module):
    wrong = [
        f"line {line}: {module} ({room(module)}) imports {target} ({room(target)})"
        for target, _, line in GRAPH[module]
        if room(target) not in ALLOWED[room(module)]
    ]
    assert not wrong, "\n".join(wrong)


def test_no_private_name_crosses_a_module_boundary():
    wrong = [
        f"{module} line {line} imports {name} from {target}"
        for module, found in GRAPH.items()
        for target, name, line in found
        if name.startswith("_") and not name.startswith("__") and target != module
    ]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    edges = {
        m: {t for t, _, _ in found if t != m and not (m.startswith(t + ".") and t)}
        for m, found in GRAPH.items()
    }
    # a package's __init__ importing its own submodules is not a cycle with them
    for module in edges:
        edges[module] = {t for t in edges[module] if not t.startswith(module + ".")}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_rules_can_fail():
    """The checker itself sees an upward import and a private name."""
    assert room("pydispatch.graph") == "core" and "tools" not in ALLOWED["core"]
    sample = imports(
        "pydispatch.graph",
        PACKAGE / "graph.py",
        set(modules()),
    )
    assert any(t == "pydispatch.errors" for t, _, _ in sample)
