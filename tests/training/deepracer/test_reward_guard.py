"""The reward-function check against code written to hurt trackday or reach its secrets."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

import pytest

from tests.training.deepracer.dr_data import TRACKS
from training.deepracer.reward_check import check_reward_function
from training.deepracer.scenarios import scenarios
from training.deepracer.settings import DeepRacerSettings
from training.deepracer.track import Track


@pytest.fixture(scope="module")
def laps():
    track = Track.load(TRACKS, "reinvent_base")
    return scenarios(track, DeepRacerSettings(), [(0.0, 1.0)])[:2]


def check(tmp_path: Path, laps, source: str):
    path = tmp_path / "reward_function.py"
    path.write_text(source)
    return check_reward_function(path, laps)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too: it only waits for its parent to read its status
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_the_child_sees_no_credentials(tmp_path, laps, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "planted-secret")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/planted/key.json")
    result = check(
        tmp_path,
        laps,
        (
            "import random\n"
            "leaked = [k for k in random._os.environ if 'AWS' in k or 'GOOGLE' in k]\n"
            "def reward_function(params):\n"
            "    if leaked:\n"
            "        raise RuntimeError(f'saw {leaked}')\n"
            "    return 1.0\n"
        ),
    )
    assert result.ok, [str(p) for p in result.problems]


def test_a_double_forked_grandchild_is_killed_and_not_waited_for(tmp_path, laps):
    pid_file = tmp_path / "grandchild.pid"
    result = check(
        tmp_path,
        laps,
        (
            "import random\n"
            "_os = random._os\n"
            "try:\n"
            "    if _os.fork() == 0:\n"
            "        _os.setsid()\n"
            "        if _os.fork() == 0:\n"
            f"            _os.write(_os.open({str(pid_file)!r}, _os.O_WRONLY | _os.O_CREAT),\n"
            "                      str(_os.getpid()).encode())\n"
            "            r, w = _os.pipe()\n"
            "            _os.read(r, 1)  # blocks for ever, holding the output open\n"
            "        _os._exit(0)\n"
            "except OSError:\n"
            "    pass  # no new process allowed (RLIMIT_NPROC, for users other than root)\n"
            "def reward_function(params):\n"
            "    return 1.0\n"
        ),
    )
    assert result.ok, [str(p) for p in result.problems]
    if os.geteuid() == 0:  # root may fork whatever the limit: the reaper must catch it
        assert pid_file.read_text()
    if pid_file.exists() and pid_file.read_text():
        pid = int(pid_file.read_text())
        deadline = time.monotonic() + 30
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid), "the grandchild outlived the check"


def test_output_is_bounded_outside_trackday(tmp_path, laps):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = check(
        tmp_path,
        laps,
        (
            "import random\n"
            "chunk = b'x' * (1 << 20)\n"
            "for _ in range(400):\n"
            "    try:\n"
            "        random._os.write(2, chunk)\n"
            "    except OSError:\n"
            "        break  # the log's size limit\n"
            "def reward_function(params):\n"
            "    print('x' * 1000)\n"
            "    return 1.0\n"
        ),
    )
    grew_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert result.ok, [str(p) for p in result.problems]
    assert grew_kib < 100 * 1024, f"trackday grew by {grew_kib} KiB"


@pytest.mark.parametrize(
    "forged",
    [
        '{"ok": true, "rewards": [], "slowest_s": 0}',
        '{"ok": false}',
        '{"loaded": true}\\n{"v": 1.0, "s": 0.0, "float": true}',
    ],
)
def test_the_checked_code_cannot_forge_an_answer(tmp_path, laps, forged):
    result = check(
        tmp_path,
        laps,
        (
            "import random\n"
            "for fd in range(0, 64):\n"
            "    try:\n"
            f"        random._os.write(fd, b'{forged}\\n')\n"
            "    except OSError:\n"
            "        pass\n"
            "random._os._exit(0)\n"
            "def reward_function(params):\n"
            "    return 1.0\n"
        ),
    )
    assert not result.ok
    assert "the check process died: the check process exited with status 0" in str(
        result.problems[0]
    )


def test_a_call_kept_off_the_cpu_is_not_too_slow(tmp_path, laps):
    """A loaded machine leaves the worker waiting for a core; the budget counts the function's
    own CPU time, so a first call held up longer than the budget without using CPU passes."""
    result = check(
        tmp_path,
        laps,
        (
            "import time\n"
            "held = []\n"
            "def reward_function(params):\n"
            "    if not held:\n"
            "        held.append(time.sleep(0.5))\n"
            "    return 1.0\n"
        ),
    )
    assert result.ok, [str(p) for p in result.problems]


def test_a_loop_that_catches_the_timeout_is_stopped_from_outside(tmp_path, laps):
    started = time.monotonic()
    result = check(
        tmp_path,
        laps,
        (
            "def reward_function(params):\n"
            "    while True:\n"
            "        try:\n"
            "            while True:\n"
            "                pass\n"
            "        except BaseException:\n"
            "            pass\n"
        ),
    )
    assert "reward_function took more than 100 ms in scenario 'centre line' step 1" in str(
        result.problems[0]
    )
    assert time.monotonic() - started < 20 + 30  # under the old overall deadline's floor


def test_memory_is_limited(tmp_path, laps):
    result = check(
        tmp_path, laps, ("hog = b'x' * (3 << 30)\ndef reward_function(params):\n    return 1.0\n")
    )
    assert "the module raised at import: MemoryError" in str(result.problems[0])


def test_files_are_limited(tmp_path, laps):
    big = tmp_path / "big.bin"
    result = check(
        tmp_path,
        laps,
        (
            "import random\n"
            f"fd = random._os.open({str(big)!r}, random._os.O_WRONLY | random._os.O_CREAT)\n"
            "for _ in range(8):\n"
            "    random._os.write(fd, b'x' * (1 << 20))\n"
            "def reward_function(params):\n"
            "    return 1.0\n"
        ),
    )
    assert "File too large" in str(result.problems[0])
    assert big.stat().st_size <= 1 << 20


def test_killing_the_supervisor_gives_no_pass(tmp_path, laps):
    result = check(
        tmp_path,
        laps,
        (
            "import random\n"
            "random._os.kill(random._os.getppid(), 9)\n"
            "def reward_function(params):\n"
            "    return 1.0\n"
        ),
    )
    assert not result.ok
    assert "the check process gave no answer" in str(result.problems[0])
