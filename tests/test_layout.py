"""The package's shape: no two modules import each other, directly or around a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "selfplay"


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(annotations: bool = False) -> dict[str, set[str]]:
    """Module -> the package modules it imports when it runs (at any depth of the file; imports
    under ``if TYPE_CHECKING:`` are for annotations only and count only with ``annotations``)."""
    modules = {_module(p): p for p in SRC.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        typing_only = {
            id(n)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)
        }
        deps = set()
        for node in ast.walk(tree):
            if id(node) in typing_only and not annotations:
                continue
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("selfplay"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    deps.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("selfplay")}
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    graph = import_graph()
    assert (
        "selfplay.engine.loop" in graph
        and "selfplay.engine.stages" in graph["selfplay.engine.loop"]
    )
    assert circles(graph) == []


def test_no_import_circles_even_through_type_hints():
    # config reads tasks' checks; tasks are typed against the config's sections, not the parser.
    assert circles(import_graph(annotations=True)) == []


def test_tasks_do_not_import_the_config_at_run_time():
    graph = import_graph()
    for name, deps in graph.items():
        if name.startswith("selfplay.tasks"):
            assert "selfplay.config" not in deps, name


# The layers of the package, from the bottom: a module imports only from its own layer and the
# layers below (docs/architecture.md describes each). A new module must be given a place here.
LAYERS = {
    "foundation": [
        "selfplay", "selfplay.errors", "selfplay.verify", "selfplay.stats", "selfplay.plots",
        "selfplay.sandbox", "selfplay.schedules", "selfplay.bars", "selfplay.sections",
        "selfplay.threads", "selfplay.engine",
    ],
    "tasks": ["selfplay.tasks*"],
    "config": ["selfplay.config"],
    "engine parts": [
        "selfplay.generation*", "selfplay.training*", "selfplay.engine.models",
        "selfplay.engine.train_worker", "selfplay.engine.filters", "selfplay.engine.artifacts",
        "selfplay.engine.ledger",
    ],
    "engine": [
        "selfplay.engine.rundir", "selfplay.engine.sampling", "selfplay.engine.evaluation",
        "selfplay.engine.metrics", "selfplay.engine.sources", "selfplay.engine.tracking",
    ],
    "stages": ["selfplay.engine.stages", "selfplay.engine.grpo"],
    "runner and schedules": ["selfplay.engine.loop", "selfplay.schedules.*"],
    "bench": ["selfplay.bench*"],
    "views": ["selfplay.views*", "selfplay.cli"],
}  # fmt: skip


def layer_of(module: str) -> int:
    """The index of ``module``'s layer (``pkg*`` covers a package and everything in it, ``pkg.*``
    only what is in it)."""
    for i, members in enumerate(LAYERS.values()):
        for m in members:
            if m.endswith(".*"):
                hit = module.startswith(m[:-1])
            elif m.endswith("*"):
                hit = module == m[:-1] or module.startswith(m[:-1] + ".")
            else:
                hit = module == m
            if hit:
                return i
    raise KeyError(module)


def test_every_module_has_a_layer_and_imports_only_downward():
    graph = import_graph()
    unplaced = []
    for name in graph:
        try:
            layer_of(name)
        except KeyError:
            unplaced.append(name)
    assert not unplaced, f"give these modules a layer in LAYERS: {unplaced}"
    upward = [
        f"{name} ({list(LAYERS)[layer_of(name)]}) -> {dep} ({list(LAYERS)[layer_of(dep)]})"
        for name, deps in graph.items()
        for dep in deps
        if layer_of(dep) > layer_of(name)
    ]
    assert not upward, "\n".join(upward)


def test_the_layer_check_catches_an_upward_import():
    assert (
        layer_of("selfplay.engine.loop")
        > layer_of("selfplay.engine.stages")
        > layer_of("selfplay.config")
    )
    assert layer_of("selfplay.tasks.code.judge") == layer_of("selfplay.tasks")
    with pytest.raises(KeyError):
        layer_of("selfplay.nowhere")


# The folders are the architecture: each holds modules of its own layers only, and the top level
# holds the foundation's small modules, the config and the command line.
FOLDERS = {
    "tasks": {"tasks"},
    "generation": {"engine parts"},
    "training": {"engine parts"},
    "engine": {"foundation", "engine parts", "engine", "stages", "runner and schedules"},
    "schedules": {"foundation", "runner and schedules"},
    "bench": {"bench"},
    "views": {"views"},
}


def test_the_folders_show_the_layers():
    names = list(LAYERS)
    misplaced = []
    for name in import_graph():
        parts = name.split(".")
        layer = names[layer_of(name)]
        if len(parts) == 2 and (SRC / f"{parts[1]}.py").exists():
            allowed = {"foundation", "config"} | ({"views"} if parts[1] == "cli" else set())
        else:
            allowed = FOLDERS.get(parts[1], {"foundation"}) if len(parts) > 1 else {"foundation"}
        if layer not in allowed:
            misplaced.append(f"{name} ({layer})")
    assert not misplaced, misplaced
    assert {p.name for p in SRC.iterdir() if p.is_dir() and not p.name.startswith("_")} == set(
        FOLDERS
    )
