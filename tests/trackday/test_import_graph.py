"""The project's import graph, read from the source with `ast`: no module imports itself
through others (function-level imports count: they close a cycle as surely when they run),
and only the command modules import Typer and Rich."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("contract", "infra", "policy", "trackday", "training")
# The command side: Typer apps and commands, and what draws on the terminal for them.
COMMAND_MODULES = {
    "trackday.cli",
    "trackday.dashboard.command",
    "trackday.donkey",
    "trackday.donkey_car",
    "trackday.donkey_cloud",
    "trackday.dr",
    "trackday.dr_commands",
    "trackday.dr_interrupted",
    "trackday.dr_logs",
    "trackday.dr_resume",
    "trackday.dr_viewer",
    "trackday.dr_watch",
    "trackday.droa_commands",
    "trackday.failure",
    "trackday.plan",
    "trackday.transfer_bar",
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if ".venv" in parts:  # the policy pack's own virtualenv (scripts/setup policy)
                continue
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path) -> set[str]:
    """Every absolute module name `path` imports, at any depth of its code."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path) & modules.keys() - {name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path of modules, or None (depth-first, iterative)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, iterators = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while path:
            following = next(iterators[-1], None)
            if following is None:
                state[path.pop()] = 2
                iterators.pop()
            elif state.get(following) == 1:
                return [*path[path.index(following) :], following]
            elif not state.get(following):
                state[following] = 1
                path.append(following)
                iterators.append(iter(sorted(graph[following])))
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycle(graph) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_import_graph_has_no_cycle() -> None:
    graph = _graph()
    assert {"trackday.dr", "trackday.dr_commands", "contract.swarm", "policy.rules"} <= graph.keys()
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_only_command_modules_import_typer_and_rich() -> None:
    modules = _modules()
    drawing = {
        name
        for name, path in modules.items()
        if any(i.split(".")[0] in ("typer", "rich") for i in _imports(path))
    }
    assert drawing == COMMAND_MODULES


def test_the_contract_and_training_import_nothing_above_them() -> None:
    graph = _graph()
    for name, imported in graph.items():
        top = name.split(".")[0]
        if top in ("contract", "training"):
            above = {i for i in imported if i.split(".")[0] in ("infra", "trackday")}
            assert not above, f"{name} imports {sorted(above)}"
    assert all(
        not i.startswith("training.") for n in graph if n.startswith("contract") for i in graph[n]
    )


def test_the_trainer_image_code_imports_only_what_the_image_carries() -> None:
    """`.dockerignore` sends training/ less training/deepracer (the image's own check:
    tests/e2e/test_trainer_image_contents.py); what runs in it must need nothing else."""
    carried = ("training.donkeycar", "training.storage")
    graph = _graph()
    for name, imported in graph.items():
        if name.startswith(carried):
            outside = {i for i in imported if i != "training" and not i.startswith(carried)}
            assert not outside, f"{name} imports {sorted(outside)}, which the image lacks"


def test_each_command_module_imports_on_its_own() -> None:
    """Each command module loads without another imported first (issue 16 found
    `trackday.dr_commands` needing trackday.dr; a cycle made lazy is still a cycle, which
    the graph test catches, and this one checks the modules load in a fresh interpreter)."""
    code = "; ".join(f"import {name}" for name in sorted(COMMAND_MODULES - {"trackday.cli"}))
    for name in ("trackday.dr_commands", "trackday.dr_viewer", "trackday.droa_commands"):
        done = subprocess.run(
            [sys.executable, "-c", f"import {name}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False).returncode == 0


def _defined(path: Path) -> set[str]:
    """The names a module binds at its top level (and in its top-level if/try blocks)."""
    names: set[str] = set()
    body = list(ast.parse(path.read_text(), str(path)).body)
    while body:
        node = body.pop()
        if isinstance(node, ast.If | ast.Try):
            body += [*node.body, *node.orelse, *getattr(node, "finalbody", [])]
            body += [n for handler in getattr(node, "handlers", []) for n in handler.body]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def _users() -> list[Path]:
    """The code that uses the packages: the packages themselves, the tests and the benches."""
    return [
        *_modules().values(),
        *(p for top in ("tests", "bench") for p in sorted((ROOT / top).rglob("*.py"))),
    ]


def test_every_name_taken_from_a_project_module_exists_there() -> None:
    """`from trackday.dr_runs import copy_model` and `dr_runs.copy_model(...)` name something
    that module defines: a function moved to another module fails here, not at run time (a
    branch written before a split still calls the old place)."""
    modules = _modules()
    defined = {name: _defined(path) for name, path in modules.items()}
    missing = []
    for path in _users():
        tree = ast.parse(path.read_text(), str(path))
        aliases: dict[str, str] = {}  # local name -> project module
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in modules:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    if full in modules:
                        aliases[alias.asname or alias.name] = full
                    elif alias.name != "*" and alias.name not in defined[node.module]:
                        missing.append(f"{path.relative_to(ROOT)}: {full}")
            elif isinstance(node, ast.Import):
                aliases |= {a.asname: a.name for a in node.names if a.asname and a.name in modules}
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
            ):
                module = aliases[node.value.id]
                if node.attr not in defined[module] and f"{module}.{node.attr}" not in modules:
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: {module}.{node.attr}")
    assert {"trackday.dr_runs", "training.storage"} <= defined.keys()
    assert not missing, "not defined where they are taken from: " + ", ".join(missing)
