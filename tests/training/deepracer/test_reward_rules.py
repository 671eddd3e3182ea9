"""Errors for what breaks training, warnings for what DRoA's import validator refuses.

DRoA's rules, from aws-solutions/deepracer-on-aws reward_func_validator (constants.py,
test_reward_function.py): imports only of math, random, numpy, scipy, shapely; no call to
open, exec, eval, compile, input; none of its forbidden strings; no import at call time;
a float result.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.training.deepracer.dr_data import CAREFUL_REWARD, TRACKS, write_folder
from training.deepracer.reward_check import check_reward_function
from training.deepracer.scenarios import scenarios
from training.deepracer.settings import DeepRacerSettings
from training.deepracer.track import Track
from training.deepracer.validate import validate_custom_files


@pytest.fixture(scope="module")
def laps():
    return scenarios(Track.load(TRACKS, "reinvent_base"), DeepRacerSettings(), [(0.0, 1.0)])[:2]


def check(tmp_path, laps, source):
    path = tmp_path / "reward_function.py"
    path.write_text(source)
    return check_reward_function(path, laps)


def test_a_function_within_droa_rules_passes_without_warnings(tmp_path, laps):
    result = check(tmp_path, laps, CAREFUL_REWARD)
    assert result.ok and result.warnings == [], [str(w) for w in result.warnings]


@pytest.mark.parametrize(
    ("source", "warning"),
    [
        (
            "import json\ndef reward_function(params):\n    return float(len(json.dumps(1)))\n",
            "reward_function.py:1: DRoA import refuses import 'json'",
        ),
        (
            "import time\ndef reward_function(params):\n    return 1.0 + 0 * time.time()\n",
            "reward_function.py:1: DRoA import refuses import 'time'",
        ),
        (
            "from collections import deque\ndef reward_function(params):\n    return 1.0\n",
            "reward_function.py:1: DRoA import refuses import 'collections'",
        ),
        (
            "def reward_function(params):\n    if params['steps'] < 0:\n        open('x')\n"
            "    return 1.0\n",
            "reward_function.py:3: DRoA import refuses calls to open()",
        ),
        (
            "def reward_function(params):\n    return float(eval('1.0'))\n",
            "reward_function.py:2: DRoA import refuses calls to eval()",
        ),
        (
            "def reward_function(params):\n    exec('x = 1')\n    return 1.0\n",
            "DRoA import refuses calls to exec()",
        ),
        (
            "def reward_function(params):\n    payload = 1.0\n    return payload\n",
            "reward_function.py:2: DRoA import refuses any source containing 'load'",
        ),
        (
            "def reward_function(params):\n    import math\n    return math.sqrt(1.0)\n",
            "reward_function.py:2: DRoA import refuses imports inside reward_function",
        ),
        (
            "def reward_function(params):\n    return 1\n",
            "reward_function.py:1: reward_function returned a number that is not a float on",
        ),
    ],
)
def test_what_droa_refuses_is_a_warning_and_the_function_runs(tmp_path, laps, source, warning):
    result = check(tmp_path, laps, source)
    assert result.ok, [str(p) for p in result.problems]
    assert result.rewards and all(result.rewards)  # it ran on every step
    assert any(warning in str(w) for w in result.warnings), [str(w) for w in result.warnings]


@pytest.mark.parametrize("module", ["os", "subprocess", "socket", "pathlib"])
def test_code_that_reaches_beyond_computation_is_not_run_here(tmp_path, laps, module):
    marker = tmp_path / "ran"
    result = check(
        tmp_path,
        laps,
        (
            f"import {module}\nopen({str(marker)!r}, 'w').close()\n"
            "def reward_function(params):\n    return 1.0\n"
        ),
    )
    assert result.ok and result.rewards == []
    assert not marker.exists()
    shown = [str(w) for w in result.warnings]
    assert f"reward_function.py:1: DRoA import refuses import '{module}'" in " ".join(shown)
    assert any(f"not run by the check: it imports '{module}'" in w for w in shown), shown


def test_a_source_only_error_still_counts_when_not_run(tmp_path, laps):
    result = check(tmp_path, laps, "import os\ndef reward(params):\n    return 1.0\n")
    assert [str(p) for p in result.problems] == [
        "reward_function.py: no reward_function defined. Fix: define "
        "`def reward_function(params):` returning a float"
    ]


def test_a_hidden_import_at_run_time_is_an_error(tmp_path, laps):
    result = check(
        tmp_path,
        laps,
        (
            "def reward_function(params):\n    f = __builtins__['__imp' + 'ort__']\n"
            "    return float(len(f('socket').__name__))\n"
        ),
    )
    assert "reward_function.py:3: ImportError: forbidden import 'socket'" in str(result.problems[0])


@pytest.mark.skipif(
    importlib.util.find_spec("shapely") is not None,
    reason="shapely is installed here: the function simply runs",
)
def test_a_simulator_module_missing_here_is_a_warning_not_an_error(tmp_path, laps):
    result = check(tmp_path, laps, "import shapely\ndef reward_function(params):\n    return 1.0\n")
    assert result.ok, [str(p) for p in result.problems]
    assert any(
        "not run by the check: shapely is not installed here" in str(w) for w in result.warnings
    )


def test_validation_without_tracks_reports_the_droa_warnings(tmp_path):
    folder = write_folder(
        tmp_path / "cf", reward="import json\ndef reward_function(p):\n    return 1.0\n"
    )
    result = validate_custom_files(folder, DeepRacerSettings(), None)
    assert result.ok, [str(p) for p in result.problems]
    assert [str(w) for w in result.warnings] == [
        "reward_function.py:1: DRoA import refuses import 'json'. Fix: DRoA import allows "
        "reward functions only math, numpy, random, scipy, shapely; training itself runs it"
    ]
