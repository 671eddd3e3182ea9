"""Runs a user's reward function on generated params: a supervisor and a worker process.

Started by reward_check.py as `python -I reward_sandbox.py ANSWER_FD` (isolated from the
project's import path, in a session of its own, with a minimal environment). It reads one
JSON request on stdin, then forks:

- the worker lowers its limits (memory, CPU, file size, processes, open files), loads the
  user's module and calls `reward_function` on every step, sending one line per call to
  the supervisor over a pipe; prints are dropped, raw writes to fds 1 and 2 go to the
  log file trackday gave (size-limited);
- the worker times each call by its own CPU time; the supervisor never runs user code. It
  watches every call from outside and kills the worker when one overruns (so a loop that
  catches the worker's own timer cannot run on), takes the worker's lines as data (checked,
  bounded), kills every process the worker left behind (it is their subreaper on Linux, so
  a double fork with setsid cannot slip away), and writes the one answer on ANSWER_FD, a
  pipe the worker closed before loading any code.

A guard for trackday and the operator against mistakes and the common tricks, not a sandbox
for hostile code: the worker runs as the operator's user (docs/security.md).
It imports nothing from the project on purpose.
"""

import builtins
import contextlib
import copy
import ctypes
import json
import math
import os
import resource
import select
import signal
import sys
import time
import traceback
import types

USER_MODULE = "reward_function"
# The worker's budgets count its own CPU time (ITIMER_PROF): a loaded machine that leaves it
# waiting for a core must not fail a good function. The supervisor's wall-clock watch, this
# long beyond a budget, catches a worker that blocks without using CPU or catches its timer.
WALL_GRACE_S = 10.0
MAX_LINE = 64 * 1024
LIMITS = {  # the worker's resource limits
    "RLIMIT_AS": 2 << 30,
    "RLIMIT_FSIZE": 1 << 20,  # the log: raw writes to fds 1 and 2
    "RLIMIT_NPROC": 0,  # no new process or thread (not enforced for root: the reaper is)
    "RLIMIT_NOFILE": 64,
    "RLIMIT_CORE": 0,
}
PR_SET_CHILD_SUBREAPER = 36


class TooSlow(BaseException):  # not Exception: a user's `except Exception` must not hide it
    """Raised by the interval timer when the budget for one call is spent."""


def _on_alarm(signum, frame):
    raise TooSlow()


# ----------------------------------------------------------------------------- the worker


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


def _failure(kind, error, path):
    if isinstance(error, SyntaxError):
        message = f"{type(error).__name__}: {error.msg}"
    else:
        message = " ".join(traceback.format_exception_only(type(error), error)[-1].split())
    return {"kind": kind, "error": message[:500], "line": _user_line(error, path)}


def _timed(budget, function, *args):
    """Call `function` under a budget of this process's CPU time; returns (result, CPU seconds)."""
    signal.setitimer(signal.ITIMER_PROF, budget)
    started = time.process_time()
    try:
        return function(*args), time.process_time() - started
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)


def _check_value(value):
    """None when the value is a reward the simulator accepts, else why not. The simulator
    takes whatever `float()` turns into a finite number in [-1e5, 1e5] (simapp v6.0.4,
    markov/agent_ctrl/rollout_agent_ctrl.py, `_judge_action_at_run_phase`): '1.5', True and
    a numpy scalar train; DRoA's validator wants a float (a warning, reward_check.py)."""
    try:
        value = float(value)
    except Exception:  # the simulator fails the episode on any error here
        return f"returned {type(value).__name__} {_shown(value)}, not a number"
    if not math.isfinite(value):
        return f"returned {value}, not a finite number"
    if not -1e5 <= value <= 1e5:
        return f"returned {value}, outside the simulator's range [-1e5, 1e5]"
    return None


def _shown(value) -> str:
    try:
        return f"{value!r:.60}"
    except Exception:  # a repr of the user's object may raise too
        return "(no repr)"


def _load(request, send):
    """The user's reward_function, or None after sending why not."""
    path = request["file"]
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    try:
        code = compile(source, path, "exec")
    except SyntaxError as error:
        send({"fail": _failure("syntax", error, path)})
        return None
    module = types.ModuleType(USER_MODULE)
    module.__file__ = path
    _guard_imports(set(request["allowed_imports"]))
    try:
        _timed(float(request["load_budget_s"]), exec, code, module.__dict__)
    except TooSlow as error:
        send({"fail": _failure("slow_load", error, path)})
        return None
    except ModuleNotFoundError as error:
        kind = "unavailable" if error.name in request["simulator_modules"] else "import"
        send({"fail": {**_failure(kind, error, path), "module": error.name}})
        return None
    except ImportError as error:
        send({"fail": _failure("import", error, path)})
        return None
    except BaseException as error:  # any failure of user code is reported
        send({"fail": _failure("load", error, path)})
        return None
    function = module.__dict__.get("reward_function")
    if not callable(function):
        send({"fail": {"kind": "missing", "error": "no reward_function defined", "line": None}})
        return None
    send({"loaded": True})
    return function


def _calls(request, function, send):
    path, budget = request["file"], float(request["budget_s"])
    for scenario in request["scenarios"]:
        waypoints = [tuple(point) for point in scenario["waypoints"]]
        for step in scenario["steps"]:
            params = dict(step, waypoints=waypoints)
            try:
                value, seconds = _timed(budget, function, copy.deepcopy(params))
            except TooSlow as error:
                return send({"fail": _failure("slow", error, path)})
            except ImportError as error:
                return send({"fail": _failure("import", error, path)})
            except BaseException as error:
                return send({"fail": _failure("raised", error, path)})
            problem = _check_value(value)
            if problem:
                return send({"fail": {"kind": "value", "error": problem, "line": None}})
            send({"v": float(value), "s": seconds, "float": isinstance(value, float)})
    return send({"end": True})


def _limit_self(cpu_seconds):
    for name, value in {**LIMITS, "RLIMIT_CPU": cpu_seconds}.items():
        limit = getattr(resource, name, None)
        if limit is not None:
            hard = resource.getrlimit(limit)[1]
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            # a platform without that limit: the supervisor's watch still holds
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(limit, (value, hard))


def _worker(request, channel):
    """The child: limits, then the user's code; every line goes to `channel`."""
    signal.signal(signal.SIGPROF, _on_alarm)
    _limit_self(int(request["cpu_s"]))
    out = os.fdopen(channel, "w", buffering=1)

    def send(message):
        out.write(json.dumps(message) + "\n")

    # Prints are dropped: debug prints on every call are common, and in the size-limited
    # log they would fail a good function. They never reach a channel either way.
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (lives as long as we do)
    function = _load(request, send)
    if function is not None:
        _calls(request, function, send)
    out.flush()
    os._exit(0)


# ----------------------------------------------------------------------------- the supervisor


class _Lines:
    """Lines from the worker, each awaited with a deadline, bounded in length."""

    def __init__(self, fd):
        self._fd = fd
        self._buffer = b""

    def next(self, timeout):
        """The next parsed line; "timeout", or None at end of stream or on garbage."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._fd], [], [], left)[0]:
                return "timeout"
            data = os.read(self._fd, 65536)
            if not data or len(self._buffer) > MAX_LINE:
                return None
            self._buffer += data
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            message = json.loads(line)
        except ValueError:
            return None
        return message if isinstance(message, dict) else None


def _describe_end(pid):
    """How the worker ended, for an answer when it stopped talking (killed if it has not)."""
    deadline = time.monotonic() + 1.0
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return "the check process ended unexpectedly"
        if done:
            break
        if time.monotonic() > deadline:
            return "the check process sent no valid answer"
        time.sleep(0.01)
    if os.WIFSIGNALED(status):
        try:
            name = signal.Signals(os.WTERMSIG(status)).name
        except ValueError:
            name = f"signal {os.WTERMSIG(status)}"
        return f"the check process was killed by {name}"
    return f"the check process exited with status {os.WEXITSTATUS(status)} without an answer"


def _supervise(request, lines, pid):
    """The answer, from the worker's lines; the worker is left to the reaper."""
    budget = float(request["budget_s"])
    first = lines.next(float(request["load_budget_s"]) + WALL_GRACE_S)
    if first == "timeout":
        return {"ok": False, "kind": "slow_load", "error": "", "line": None}
    if first is None or "loaded" not in first:
        return _failed(first, None, None, pid)
    rewards, slowest, not_float = [], 0.0, 0
    for s_index, scenario in enumerate(request["scenarios"]):
        values = []
        for step_index in range(len(scenario["steps"])):
            where = (s_index, step_index)
            message = lines.next(budget + WALL_GRACE_S)
            if message == "timeout":
                return {
                    "ok": False,
                    "kind": "slow",
                    "error": "",
                    "line": None,
                    "scenario": s_index,
                    "step": step_index,
                }
            value = message.get("v") if isinstance(message, dict) else None
            if not isinstance(value, float) or not math.isfinite(value):
                return _failed(message, *where, pid)
            seconds = message.get("s")
            slowest = max(slowest, seconds if isinstance(seconds, float) else budget)
            not_float += message.get("float") is False
            values.append(value)
        rewards.append(values)
    return {"ok": True, "rewards": rewards, "slowest_s": slowest, "not_float": not_float}


def _failed(message, s_index, step_index, pid):
    where = {} if s_index is None else {"scenario": s_index, "step": step_index}
    failure = message.get("fail") if isinstance(message, dict) else None
    if not isinstance(failure, dict):
        return {"ok": False, "kind": "died", "error": _describe_end(pid), "line": None, **where}
    return {"ok": False, **failure, **where}


def _descendants():
    """Our children by /proc (orphans of the worker's tree are ours, as their subreaper)."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me:
                found.append(int(entry))
    return found


def _reap_all(worker, patience_s=5.0):
    """Kill the worker and everything it started that is still ours, and reap them."""
    deadline = time.monotonic() + patience_s
    while time.monotonic() < deadline:
        for pid in {worker, *_descendants()}:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return
        time.sleep(0.005)


def _become_subreaper():
    """Orphans of the worker's tree are reparented to us (Linux); elsewhere a no-op."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def main():
    answer_fd = int(sys.argv[1])
    request = json.loads(sys.stdin.buffer.read())
    _become_subreaper()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: never returns into the supervisor's code
        try:
            os.close(answer_fd)
            os.close(read_end)
            _worker(request, write_end)
        finally:
            os._exit(70)
    os.close(write_end)
    try:
        answer = _supervise(request, _Lines(read_end), pid)
    finally:
        _reap_all(pid)
    with os.fdopen(answer_fd, "w") as channel:
        channel.write(json.dumps(answer))


if __name__ == "__main__":
    main()
