"""Checks `reward_function.py` the way training will call it, before a GPU hour is spent.

The function runs in a separate Python process (reward_sandbox.py) on the params of every
generated scenario, with a time budget per call. What is an error and what a warning
follows reward_rules.py: errors for what breaks training, warnings for what DRoA's import
would refuse and for code the check does not run here.

The check runs code people copy from each other inside `pulumi up` and
`dr start-training`, so the child gets no credentials (a minimal environment), a session
of its own killed as a whole, resource limits, a log file instead of unbounded captured
output, and an answer pipe the checked code never holds. It is a guard for trackday and
the operator, not a sandbox for hostile code: see docs/security.md.
"""

from __future__ import annotations

import ast
import contextlib
import json
import math
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from training.deepracer.problems import Problem
from training.deepracer.reward_rules import (
    CHECK_RUNS,
    DROA_IMPORTS,
    droa_warnings,
    not_run_reason,
    not_run_warning,
)
from training.deepracer.scenarios import Scenario

DEFAULT_BUDGET_S = 0.1  # the simulator steps 15 times a second; a slow reward slows training
LOAD_BUDGET_S = 20.0  # importing numpy or scipy on a busy machine
MAX_ANSWER_BYTES = 32 << 20
_SANDBOX = Path(__file__).with_name("reward_sandbox.py")
_KINDS = {
    "syntax",
    "missing",
    "import",
    "unavailable",
    "slow_load",
    "slow",
    "load",
    "raised",
    "value",
    "died",
}


@dataclass
class RewardCheck:
    """The outcome: problems (empty when the function passed), warnings, every reward."""

    problems: list[Problem] = field(default_factory=list)
    rewards: list[list[float]] = field(default_factory=list)
    slowest_s: float = 0.0
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _definition_line(source: str) -> int | None:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    return next(
        (
            node.lineno
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name == "reward_function"
        ),
        None,
    )


def _describe_step(scenario: Scenario, step: int) -> str:
    params = scenario.steps[step]
    shown = ", ".join(
        f"{key}={params[key]:.3g}" if isinstance(params[key], float) else f"{key}={params[key]}"
        for key in ("progress", "distance_from_center", "all_wheels_on_track", "is_reversed")
    )
    return f"in scenario '{scenario.name}' step {step + 1} ({shown})"


def _problem(
    answer: dict, name: str, source: str, scenarios: list[Scenario], budget_s: float
) -> Problem:
    kind, error, line = answer["kind"], answer["error"], answer.get("line")
    where = ""
    if "scenario" in answer:
        where = " " + _describe_step(scenarios[answer["scenario"]], answer["step"])
    if kind == "syntax":
        return Problem(
            name,
            f"syntax error: {error.removeprefix('SyntaxError: ')}",
            "correct the Python syntax there",
            line,
        )
    if kind == "missing":
        return Problem(
            name,
            "no reward_function defined",
            "define `def reward_function(params):` returning a float",
        )
    if kind == "import":
        return Problem(
            name,
            f"{error}{where}",
            "import modules with an import statement at the top of the file, and "
            f"only computing ones ({', '.join(sorted(DROA_IMPORTS))}, json, ...)",
            line,
        )
    if kind == "slow_load":
        return Problem(
            name,
            f"loading the file took more than {LOAD_BUDGET_S:.0f} s",
            "move heavy work out of module level",
            line,
        )
    if kind == "slow":
        return Problem(
            name,
            f"reward_function took more than {budget_s * 1000:.0f} ms{where}",
            "make it faster (precompute at module level, avoid loops over all waypoints per "
            "call): the simulator calls it 15 times a second",
            line,
        )
    if kind == "load":
        return Problem(
            name,
            f"the module raised at import: {error}",
            "make module-level code run without errors",
            line,
        )
    if kind == "raised":
        return Problem(
            name,
            f"reward_function raised {error}{where}",
            "handle these params (guard divisions, indexes and missing keys)",
            line,
        )
    if kind == "died":
        return Problem(
            name,
            f"the check process died: {error}{where}",
            "do not exit, fork or crash the interpreter from the file",
        )
    none_hint = " (a path without `return`?)" if "NoneType" in error else ""
    return Problem(
        name,
        f"reward_function {error}{none_hint}{where}",
        "return float(reward) on every path",
        _definition_line(source),
    )


def _parse(path: Path) -> tuple[str, ast.Module | None, list[Problem]]:
    """The source, its tree (None on a syntax error) and the problems found reading it."""
    name = path.name
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return "", None, [Problem(name, f"cannot read the file: {error}", "save it as UTF-8 text")]
    try:
        return source, ast.parse(source, filename=name), []
    except SyntaxError as error:
        return (
            source,
            None,
            [
                Problem(
                    name,
                    f"syntax error: {error.msg}",
                    "correct the Python syntax there",
                    error.lineno,
                )
            ],
        )


def check_reward_source(path: Path) -> list[Problem]:
    """What can be checked without running the code: it reads, parses, defines the function.

    For when no track files are at hand (e.g. `pulumi preview` on a CI runner)."""
    source, tree, problems = _parse(path)
    if (
        tree is not None
        and _definition_line(source) is None
        and not any(
            isinstance(node, ast.Assign)
            and any(getattr(t, "id", None) == "reward_function" for t in node.targets)
            for node in tree.body
        )
    ):
        problems.append(
            Problem(
                path.name,
                "no reward_function defined",
                "define `def reward_function(params):` returning a float",
            )
        )
    return problems


def reward_warnings(path: Path) -> list[Problem]:
    """What DRoA's import would refuse in the file (nothing when it does not parse)."""
    source, tree, _ = _parse(path)
    return droa_warnings(source, tree, path.name) if tree is not None else []


def check_reward_function(
    path: Path, scenarios: list[Scenario], budget_s: float = DEFAULT_BUDGET_S
) -> RewardCheck:
    """Run the reward function in a child process on every scenario's params."""
    name = path.name
    source, tree, problems = _parse(path)
    if not source and problems:
        return RewardCheck(problems)
    warnings = droa_warnings(source, tree, name) if tree is not None else []
    reason = not_run_reason(tree) if tree is not None else None
    if reason is not None:
        return RewardCheck(
            check_reward_source(path), warnings=[*warnings, not_run_warning(reason, name)]
        )
    calls = sum(len(s.steps) for s in scenarios)
    deadline = LOAD_BUDGET_S + calls * budget_s * 2 + 30
    request = {
        "file": str(path.resolve()),
        "budget_s": budget_s,
        "load_budget_s": LOAD_BUDGET_S,
        "cpu_s": int(deadline) + 1,
        "allowed_imports": sorted(CHECK_RUNS),
        "simulator_modules": sorted(DROA_IMPORTS),
        "scenarios": [{"waypoints": s.waypoints, "steps": s.steps} for s in scenarios],
    }
    raw, last_line = _run_sandbox(request, deadline)
    answer = _parse_answer(raw, scenarios)
    if answer is None:
        why = last_line or f"no answer within {deadline:.0f} s"
        return RewardCheck(
            [
                Problem(
                    name,
                    f"the check process gave no answer: {why}",
                    "do not exit, fork or crash the interpreter from the file",
                )
            ],
            warnings=warnings,
        )
    if answer["ok"]:
        if answer["not_float"]:
            warnings.append(
                Problem(
                    name,
                    f"reward_function returned a number that is not a "
                    f"float on {answer['not_float']} call(s)",
                    "return float(reward): DRoA's validator requires a float",
                    _definition_line(source),
                )
            )
        return RewardCheck([], answer["rewards"], answer["slowest_s"], warnings)
    if answer["kind"] == "unavailable":
        module = str(answer.get("module"))
        warnings.append(
            Problem(
                name,
                f"not run by the check: {module} is not installed here "
                "(the simulator has it), so only its source was checked",
                f"pip install {module} where trackday runs",
                answer.get("line"),
            )
        )
        return RewardCheck(check_reward_source(path), warnings=warnings)
    return RewardCheck([_problem(answer, name, source, scenarios, budget_s)], warnings=warnings)


def _minimal_env(home: str) -> dict[str, str]:
    """No credentials or cloud settings reach the checked code: only what Python needs."""
    return {
        "PATH": os.defpath,
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _run_sandbox(request: dict, deadline_s: float) -> tuple[bytes | None, str]:
    """The supervisor's answer (None if none came in time) and the last line logged.

    Waits for the answer pipe, not for the output: a grandchild holding the log open
    cannot make trackday wait. The whole session is killed afterwards."""
    with tempfile.TemporaryDirectory(prefix="trackday-reward-") as home:
        log_path = Path(home) / "output.log"
        read_end, write_end = os.pipe()
        try:
            with log_path.open("wb") as log:
                child = subprocess.Popen(
                    [sys.executable, "-I", str(_SANDBOX), str(write_end)],
                    stdin=subprocess.PIPE,
                    stdout=log,
                    stderr=log,
                    pass_fds=(write_end,),
                    env=_minimal_env(home),
                    cwd=home,
                    start_new_session=True,
                )
        finally:
            os.close(write_end)
        try:
            with contextlib.suppress(BrokenPipeError):  # it died at once: no answer says so
                child.stdin.write(json.dumps(request).encode())  # type: ignore[union-attr]
                child.stdin.close()  # type: ignore[union-attr]
            answer = _read_answer(read_end, time.monotonic() + deadline_s)
        finally:
            os.close(read_end)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        return answer, _last_line(log_path)


def _read_answer(fd: int, deadline: float) -> bytes | None:
    """Everything written to the answer pipe until its end, None past the deadline or size."""
    chunks, size = [], 0
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([fd], [], [], left)[0]:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            return None
        chunks.append(chunk)
    return None


def _last_line(log: Path) -> str:
    """The last line the checked code logged (read from the file's end only)."""
    with log.open("rb") as f:
        f.seek(max(0, log.stat().st_size - 4096))
        lines = f.read().decode("utf-8", errors="replace").strip().splitlines()
    return lines[-1][:300] if lines else ""


def _parse_answer(raw: bytes | None, scenarios: list[Scenario]) -> dict | None:
    """The answer if it has the shape the supervisor writes, else None (never a KeyError)."""
    try:
        answer = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return None
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        return None
    if answer["ok"]:
        rewards = answer.get("rewards")
        shaped = (
            isinstance(rewards, list)
            and len(rewards) == len(scenarios)
            and all(
                isinstance(lap, list)
                and len(lap) == len(s.steps)
                and all(isinstance(v, float) and math.isfinite(v) for v in lap)
                for lap, s in zip(rewards, scenarios, strict=False)
            )
        )
        counts = isinstance(answer.get("slowest_s"), float) and isinstance(
            answer.get("not_float"), int
        )
        return answer if shaped and counts else None
    where = answer.get("scenario"), answer.get("step")
    in_range = where == (None, None) or (
        all(isinstance(i, int) for i in where)
        and 0 <= where[0] < len(scenarios)
        and 0 <= where[1] < len(scenarios[where[0]].steps)
    )
    fields = (
        answer.get("kind") in _KINDS
        and isinstance(answer.get("error"), str)
        and isinstance(answer.get("line"), int | None)
    )
    return answer if in_range and fields else None
