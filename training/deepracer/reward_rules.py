"""What a reward function may import and call: for training, for DRoA import, for the check.

Three different rules, kept apart on purpose:

- Training imports anything the simulator image has (the module is imported by the
  simulator's Python): an import never breaks training unless the module is missing there.
- DeepRacer on AWS (DRoA), the console's replacement, refuses a model on import unless its
  reward function passes DRoA's validator. Its rules, read from aws-solutions/deepracer-on-aws
  (source/libs/reward-function-validation/lib/reward_func_validator/constants.py and
  test_reward_function.py, commit 61af778f): imports only of math, random, numpy, scipy,
  shapely (top-level name of every `import`/`from`); no call named open, exec, eval,
  compile or input; none of the strings `__import__`, load, fromfile, genfromtxt, loadtxt,
  tofile, savez, save, savetxt, memmap anywhere in the source (a plain substring test, so
  `payload` counts); no import run inside `reward_function` at call time; a `float` result.
  Breaking these is a warning: the run trains, but the model cannot go to DRoA.
- trackday's check runs the function on the operator's machine, so it runs only code whose
  imports compute and nothing else (CHECK_RUNS). A function that imports more (os, socket,
  ...) is checked as source only, with a warning saying so.
"""

from __future__ import annotations

import ast

from training.deepracer.problems import Problem

DROA_IMPORTS = frozenset({"math", "random", "numpy", "scipy", "shapely"})
DROA_BUILTINS = frozenset({"open", "exec", "eval", "compile", "input"})
DROA_STRINGS = (
    "__import__",
    "load",
    "fromfile",
    "genfromtxt",
    "loadtxt",
    "tofile",
    "savez",
    "save",
    "savetxt",
    "memmap",
)
CHECK_RUNS = DROA_IMPORTS | frozenset(
    {
        "time",
        "json",
        "cmath",
        "statistics",
        "decimal",
        "fractions",
        "collections",
        "itertools",
        "functools",
        "operator",
        "bisect",
        "heapq",
        "copy",
        "dataclasses",
        "enum",
        "typing",
        "abc",
        "re",
        "string",
        "datetime",
        "numbers",
        "array",
    }
)
_DROA_HINT = "DRoA import allows reward functions only " + ", ".join(sorted(DROA_IMPORTS))


def _imports(tree: ast.AST) -> list[tuple[str, int]]:
    """Every absolute import's module with its line, `__import__(...)` as `__import__`."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            found.append((".", node.lineno))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            found.append(("__import__", node.lineno))
    return found


def not_run_reason(tree: ast.AST) -> tuple[str, int] | None:
    """Why the check will not run this code on the operator's machine (module, line), or None."""
    for module, line in _imports(tree):
        if module.split(".")[0] not in CHECK_RUNS:
            return module, line
    return None


def _calls_at_call_time(tree: ast.AST) -> list[int]:
    """Lines of imports inside `reward_function`: DRoA runs the function with imports off."""
    return [
        inner.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == "reward_function"
        for inner in ast.walk(node)
        if isinstance(inner, ast.Import | ast.ImportFrom)
    ]


def droa_warnings(source: str, tree: ast.AST, name: str) -> list[Problem]:
    """What DRoA's validator would refuse in this source, one warning each."""
    warnings = []
    for module, line in _imports(tree):
        if module.split(".")[0] not in DROA_IMPORTS and module != "__import__":
            warnings.append(
                Problem(
                    name,
                    f"DRoA import refuses import {module!r}",
                    f"{_DROA_HINT}; training itself runs it",
                    line,
                )
            )
    for node in ast.walk(tree):
        called = getattr(node.func, "id", None) if isinstance(node, ast.Call) else None
        if called in DROA_BUILTINS:
            warnings.append(
                Problem(
                    name,
                    f"DRoA import refuses calls to {called}()",
                    "remove it if the model is to go to DRoA",
                    node.lineno,
                )
            )
    for text in DROA_STRINGS:
        index = source.find(text)
        if index >= 0:
            line = source.count("\n", 0, index) + 1
            warnings.append(
                Problem(
                    name,
                    f"DRoA import refuses any source containing {text!r}",
                    "rename or remove it if the model is to go to DRoA",
                    line,
                )
            )
    for line in _calls_at_call_time(tree):
        warnings.append(
            Problem(
                name,
                "DRoA import refuses imports inside reward_function",
                "move the import to the top of the file",
                line,
            )
        )
    return warnings


def not_run_warning(reason: tuple[str, int], name: str) -> Problem:
    """The warning for code the check does not run (see not_run_reason)."""
    module, line = reason
    return Problem(
        name,
        f"not run by the check: it imports {module!r}, which reaches beyond "
        "computation, so only its source was checked",
        "import only computing modules (math, numpy, json, ...) to have it run "
        "here; otherwise training is its first run",
        line,
    )
