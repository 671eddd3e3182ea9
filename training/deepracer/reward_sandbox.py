"""Runs a user's reward function on generated params, in a child process of its own.

Started by reward_check.py as `python -I reward_sandbox.py`: isolated from the project's
import path, it reads one JSON request on stdin and writes one JSON answer on stdout. The
user's code may loop forever, print, or try to import what the simulator does not allow:
each call has a time budget (an interval timer), imports from the user's module are checked
against the allowed list, and the user's prints go to stderr so the answer stays parseable.
It imports nothing from the project on purpose.
"""

import builtins
import copy
import json
import math
import signal
import sys
import time
import traceback
import types

USER_MODULE = "reward_function"


class TooSlow(BaseException):  # not Exception: a user's `except Exception` must not hide it
    """Raised by the interval timer when the budget for one call is spent."""


def _on_alarm(signum, frame):
    raise TooSlow()


def _guard_imports(allowed):
    """Make imports made by the user's module fail unless their top package is allowed."""
    real_import = builtins.__import__

    def guarded(name, globals=None, locals=None, fromlist=(), level=0):
        callers = (globals or {}, sys._getframe(1).f_globals)
        if any(scope.get("__name__") == USER_MODULE for scope in callers):
            top = name.split(".")[0]
            if level == 0 and top not in allowed:
                raise ImportError(f"forbidden import {name!r}")
        return real_import(name, globals, locals, fromlist, level)

    builtins.__import__ = guarded


def _user_line(error, path):
    """The line in the user's file where `error` happened, if it happened there."""
    if isinstance(error, SyntaxError) and error.filename == path:
        return error.lineno
    line = None
    for frame, lineno in traceback.walk_tb(error.__traceback__):
        if frame.f_code.co_filename == path:
            line = lineno
    return line


def _failure(kind, error, path, **extra):
    if isinstance(error, SyntaxError):
        message = f"{type(error).__name__}: {error.msg}"
    else:
        message = " ".join(traceback.format_exception_only(type(error), error)[-1].split())
    return {"ok": False, "kind": kind, "error": message, "line": _user_line(error, path), **extra}


def _timed(budget, function, *args):
    """Call `function` under a time budget; returns (result, seconds)."""
    signal.setitimer(signal.ITIMER_REAL, budget)
    started = time.perf_counter()
    try:
        return function(*args), time.perf_counter() - started
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _check_value(value):
    """None when the value is a reward the simulator accepts, else why not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        numeric = getattr(value, "dtype", None) is not None and getattr(value, "ndim", 1) == 0
        if not numeric or value.dtype.kind not in "iuf":
            return f"returned {type(value).__name__} {value!r:.60}, not a number"
        value = float(value)
    if not math.isfinite(value):
        return f"returned {value}, not a finite number"
    if not -1e5 <= value <= 1e5:
        return f"returned {value}, outside the simulator's range [-1e5, 1e5]"
    return None


def run(request):
    path = request["file"]
    budget = float(request["budget_s"])
    signal.signal(signal.SIGALRM, _on_alarm)
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    try:
        code = compile(source, path, "exec")
    except SyntaxError as error:
        return _failure("syntax", error, path)
    module = types.ModuleType(USER_MODULE)
    module.__file__ = path
    _guard_imports(set(request["allowed_imports"]))
    try:
        _timed(float(request["load_budget_s"]), exec, code, module.__dict__)
    except TooSlow as error:
        return _failure("slow_load", error, path)
    except ImportError as error:
        return _failure("import", error, path)
    except BaseException as error:  # any failure of user code is reported
        return _failure("load", error, path)
    function = module.__dict__.get("reward_function")
    if not callable(function):
        return {"ok": False, "kind": "missing", "error": "no reward_function defined",
                "line": None}
    rewards, slowest = [], 0.0
    for s_index, scenario in enumerate(request["scenarios"]):
        waypoints = [tuple(point) for point in scenario["waypoints"]]
        values = []
        for step_index, step in enumerate(scenario["steps"]):
            params = dict(step, waypoints=waypoints)
            where = {"scenario": s_index, "step": step_index}
            try:
                value, seconds = _timed(budget, function, copy.deepcopy(params))
            except TooSlow as error:
                return _failure("slow", error, path, **where)
            except ImportError as error:
                return _failure("import", error, path, **where)
            except BaseException as error:
                return _failure("raised", error, path, **where)
            slowest = max(slowest, seconds)
            problem = _check_value(value)
            if problem:
                return {"ok": False, "kind": "value", "error": problem, "line": None, **where}
            values.append(float(value))
        rewards.append(values)
    return {"ok": True, "rewards": rewards, "slowest_s": slowest}


def main():
    request = json.loads(sys.stdin.read())
    answer_channel = sys.stdout
    sys.stdout = sys.stderr  # the user's prints must not corrupt the answer
    answer = run(request)
    answer_channel.write(json.dumps(answer))
    answer_channel.flush()


if __name__ == "__main__":
    main()
