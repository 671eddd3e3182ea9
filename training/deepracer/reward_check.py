"""Checks `reward_function.py` the way training will call it, before a GPU hour is spent.

The function runs in a separate Python process (reward_sandbox.py) on the params of every
generated scenario, with a time budget per call. Only the imports the simulator image offers
reward functions are allowed: the AWS DeepRacer documentation names math, random, numpy,
scipy and shapely; trackday also allows `time` and pure-computation standard modules
(ALLOWED_IMPORTS). Anything touching files, processes or the network (os, sys, subprocess,
socket, ...) is refused, because in training it would either fail or slow every step.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from training.deepracer.problems import Problem
from training.deepracer.scenarios import Scenario

ALLOWED_IMPORTS = frozenset({
    "math", "random", "time", "numpy", "scipy", "shapely",
    "cmath", "statistics", "decimal", "fractions", "collections", "itertools", "functools",
    "operator", "bisect", "heapq", "copy", "dataclasses", "enum", "typing", "abc", "re",
})
DEFAULT_BUDGET_S = 0.1  # the simulator steps 15 times a second; a slow reward slows training
LOAD_BUDGET_S = 20.0  # importing numpy or scipy on a busy machine
_SANDBOX = Path(__file__).with_name("reward_sandbox.py")
_ALLOWED_TEXT = ", ".join(sorted(ALLOWED_IMPORTS))


@dataclass
class RewardCheck:
    """The outcome: problems (empty when the function passed) and every reward it returned."""

    problems: list[Problem] = field(default_factory=list)
    rewards: list[list[float]] = field(default_factory=list)
    slowest_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


def forbidden_imports(source: str, name: str) -> list[Problem]:
    """Imports outside ALLOWED_IMPORTS, found without running the code (a SyntaxError: none)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    problems = []
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__":
            modules = ["__import__"]
        for module in modules:
            if module.split(".")[0] not in ALLOWED_IMPORTS:
                problems.append(Problem(
                    name, f"forbidden import {module!r}",
                    f"the simulator allows reward functions only {_ALLOWED_TEXT}; remove it",
                    node.lineno))
    return problems


def _definition_line(source: str) -> int | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    return next((node.lineno for node in tree.body if isinstance(node, ast.FunctionDef)
                 and node.name == "reward_function"), None)


def _describe_step(scenario: Scenario, step: int) -> str:
    params = scenario.steps[step]
    shown = ", ".join(f"{key}={params[key]:.3g}" if isinstance(params[key], float)
                      else f"{key}={params[key]}" for key in
                      ("progress", "distance_from_center", "all_wheels_on_track", "is_reversed"))
    return f"in scenario '{scenario.name}' step {step + 1} ({shown})"


def _problem(answer: dict, name: str, source: str, scenarios: list[Scenario],
             budget_s: float) -> Problem:
    kind, error, line = answer["kind"], answer["error"], answer.get("line")
    where = ""
    if "scenario" in answer:
        where = " " + _describe_step(scenarios[answer["scenario"]], answer["step"])
    if kind == "syntax":
        return Problem(name, f"syntax error: {error.removeprefix('SyntaxError: ')}",
                       "correct the Python syntax there", line)
    if kind == "missing":
        return Problem(name, "no reward_function defined",
                       "define `def reward_function(params):` returning a float")
    if kind == "import":
        return Problem(name, f"{error}{where}",
                       f"the simulator allows reward functions only {_ALLOWED_TEXT}; remove it",
                       line)
    if kind == "slow_load":
        return Problem(name, f"loading the file took more than {LOAD_BUDGET_S:.0f} s",
                       "move heavy work out of module level", line)
    if kind == "slow":
        return Problem(
            name, f"reward_function took more than {budget_s * 1000:.0f} ms{where}",
            "make it faster (precompute at module level, avoid loops over all waypoints per "
            "call): the simulator calls it 15 times a second", line)
    if kind == "load":
        return Problem(name, f"the module raised at import: {error}",
                       "make module-level code run without errors", line)
    if kind == "raised":
        return Problem(name, f"reward_function raised {error}{where}",
                       "handle these params (guard divisions, indexes and missing keys)", line)
    none_hint = " (a path without `return`?)" if "NoneType" in error else ""
    return Problem(name, f"reward_function {error}{none_hint}{where}",
                   "return float(reward) on every path", _definition_line(source))


def check_reward_source(path: Path) -> list[Problem]:
    """What can be checked without running the code: syntax, imports, the function's name.

    For when no track files are at hand (e.g. `pulumi preview` on a CI runner)."""
    name = path.name
    try:
        source = path.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=name)
    except (OSError, UnicodeDecodeError) as error:
        return [Problem(name, f"cannot read the file: {error}", "save it as UTF-8 text")]
    except SyntaxError as error:
        return [Problem(name, f"syntax error: {error.msg}", "correct the Python syntax there",
                        error.lineno)]
    problems = forbidden_imports(source, name)
    if _definition_line(source) is None and not any(
            isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "reward_function"
                                                 for t in node.targets) for node in tree.body):
        problems.append(Problem(name, "no reward_function defined",
                                "define `def reward_function(params):` returning a float"))
    return problems


def check_reward_function(path: Path, scenarios: list[Scenario],
                          budget_s: float = DEFAULT_BUDGET_S) -> RewardCheck:
    """Run the reward function in a child process on every scenario's params."""
    name = path.name
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return RewardCheck([Problem(name, f"cannot read the file: {error}",
                                    "save it as UTF-8 text")])
    static = forbidden_imports(source, name)
    if static:
        return RewardCheck(static)
    request = {
        "file": str(path.resolve()), "budget_s": budget_s, "load_budget_s": LOAD_BUDGET_S,
        "allowed_imports": sorted(ALLOWED_IMPORTS),
        "scenarios": [{"waypoints": s.waypoints, "steps": s.steps} for s in scenarios],
    }
    calls = sum(len(s.steps) for s in scenarios)
    deadline = LOAD_BUDGET_S + calls * budget_s + 30
    try:
        done = subprocess.run([sys.executable, "-I", str(_SANDBOX)], input=json.dumps(request),
                              capture_output=True, text=True, timeout=deadline, check=False)
    except subprocess.TimeoutExpired:
        return RewardCheck([Problem(name, f"the check did not finish within {deadline:.0f} s",
                                    "look for endless loops in native code (numpy, scipy)")])
    try:
        answer = json.loads(done.stdout)
    except json.JSONDecodeError:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return RewardCheck([Problem(name, f"the check process died: {tail[0]}",
                                    "do not exit or crash the interpreter from the file")])
    if not answer["ok"]:
        return RewardCheck([_problem(answer, name, source, scenarios, budget_s)])
    return RewardCheck([], answer["rewards"], answer["slowest_s"])
