"""Custom-file validation: real tracks, the simulator's params, and every bad case's message."""

import math

import pytest

from tests.training.deepracer.dr_data import HYPERPARAMETERS, METADATA, TRACKS, write_folder
from training.deepracer.hyperparameters_check import check_hyperparameters
from training.deepracer.metadata_check import check_model_metadata
from training.deepracer.reward_check import check_reward_function
from training.deepracer.reward_plot import plot_reward_lap
from training.deepracer.scenarios import scenarios
from training.deepracer.settings import DeepRacerSettings
from training.deepracer.track import Track
from training.deepracer.validate import validate_custom_files

# Every key the simulator puts in params (its RewardParam list), plus waypoints.
SIMULATOR_KEYS = {
    "all_wheels_on_track",
    "x",
    "y",
    "heading",
    "distance_from_center",
    "projection_distance",
    "progress",
    "steps",
    "speed",
    "steering_angle",
    "track_width",
    "track_length",
    "closest_waypoints",
    "is_left_of_center",
    "is_reversed",
    "closest_objects",
    "objects_location",
    "objects_left_of_center",
    "object_in_camera",
    "objects_speed",
    "objects_heading",
    "objects_distance_from_center",
    "objects_distance",
    "is_crashed",
    "is_offtrack",
    "sim_time",
}


@pytest.fixture(scope="module")
def base_laps():
    track = Track.load(TRACKS, "reinvent_base")
    return scenarios(track, DeepRacerSettings(), [(0.0, 1.0), (30.0, 0.5)])


@pytest.mark.parametrize(
    "world",
    [
        "reinvent_base",
        "2022_april_open_ccw",
        "2022_april_pro_cw",
        "Monaco",
        "reInvent2019_wide_mirrored",
        "Straight_track",
    ],
)
def test_careful_reward_passes_on_real_tracks(tmp_path, world):
    folder = write_folder(tmp_path / "custom_files")
    result = validate_custom_files(folder, DeepRacerSettings(world=world), TRACKS)
    assert result.ok, [str(p) for p in result.problems]
    names = [s.name for s in result.scenarios]
    assert names[:2] == ["centre line", "left of centre"]
    assert not any("reversed" in name for name in names)  # training drives one sense
    for scenario, rewards in zip(result.scenarios, result.reward.rewards, strict=True):
        assert len(rewards) == len(scenario.steps) > 0
        assert all(math.isfinite(r) for r in rewards)


def test_params_match_the_simulator(base_laps):
    by_name = {s.name: s for s in base_laps}
    for scenario in base_laps:
        for params in scenario.steps:
            assert set(params) == SIMULATOR_KEYS
            assert 0 < params["progress"] <= 100 and -180 <= params["heading"] <= 180
    centre = by_name["centre line"].steps
    assert all(p["all_wheels_on_track"] and p["distance_from_center"] < 1e-6 for p in centre)
    assert [p["steps"] for p in centre] == list(range(1, len(centre) + 1))
    assert 0.7 < centre[0]["track_width"] < 1.2 and 15 < centre[0]["track_length"] < 25
    assert all(p["is_left_of_center"] for p in by_name["left of centre"].steps)
    assert not any(p["is_left_of_center"] for p in by_name["right of centre"].steps)
    off = by_name["off track"].steps
    assert all(p["is_offtrack"] and not p["all_wheels_on_track"] for p in off)
    assert not any(p["is_reversed"] for s in base_laps for p in s.steps)


def test_object_avoidance_has_objects_and_crashes(tmp_path):
    settings = DeepRacerSettings.model_validate(
        {
            "race_type": "OBJECT_AVOIDANCE",
            "world": "reInvent2019_track",
            "object_avoidance": {"number_of_obstacles": 4},
        }
    )
    result = validate_custom_files(write_folder(tmp_path / "cf"), settings, TRACKS)
    assert result.ok, [str(p) for p in result.problems]
    centre = result.scenarios[0].steps
    assert all(len(p["objects_location"]) == 4 for p in centre)
    assert any(p["object_in_camera"] for p in centre)
    crashed = next(s for s in result.scenarios if s.name == "crashed into an object")
    assert len(crashed.steps) == 4 and all(p["is_crashed"] for p in crashed.steps)
    png = plot_reward_lap(
        result.track, result.scenarios, result.reward.rewards, tmp_path / "reward.png"
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_head_to_bot_objects_move():
    settings = DeepRacerSettings(race_type="HEAD_TO_BOT")
    laps = scenarios(Track.load(TRACKS, "reinvent_base"), settings, [(0.0, 1.0)])
    assert laps[0].steps[0]["objects_speed"] == [0.2, 0.2, 0.2]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "def reward_function(params)\n    return 1.0\n",
            "reward_function.py:1: syntax error: expected ':'. Fix: correct the Python syntax",
        ),
        (
            "def reward(params):\n    return 1.0\n",
            "reward_function.py: no reward_function defined. Fix: define `def reward_function",
        ),
        (
            "def reward_function(params):\n    if params['is_offtrack']:\n        return 1 / 0\n"
            "    return 1.0\n",
            "reward_function.py:3: reward_function raised ZeroDivisionError: division by zero in "
            "scenario 'off track' step 1",
        ),
        (
            "def reward_function(params):\n    if params['progress'] > 50:\n        return 1.0\n",
            "reward_function.py:1: reward_function returned NoneType None, not a number (a path "
            "without `return`?) in scenario 'centre line' step 1",
        ),
        (
            "def reward_function(params):\n    return float('nan')\n",
            "returned nan, not a finite number",
        ),
        ("def reward_function(params):\n    return 'fast'\n", "returned str 'fast', not a number"),
        ("def reward_function(params):\n    return 1e9\n", "outside the simulator's range"),
        (
            "def reward_function(params):\n    while True:\n        pass\n",
            "reward_function.py:2: reward_function took more than 100 ms in scenario 'centre line'",
        ),
        (
            "def reward_function(params):\n    f = __builtins__['__imp' + 'ort__']\n"
            "    return float(len(f('socket').__name__))\n",
            "reward_function.py:3: ImportError: forbidden import 'socket'",
        ),
        (
            "raise RuntimeError('boom')\n",
            "reward_function.py:1: the module raised at import: RuntimeError: boom",
        ),
        (
            "def reward_function(params):\n    return params['speed_of_light']\n",
            "raised KeyError: 'speed_of_light'",
        ),
    ],
)
def test_bad_reward_functions(tmp_path, base_laps, source, expected):
    path = tmp_path / "reward_function.py"
    path.write_text(source)
    check = check_reward_function(path, base_laps)
    assert not check.ok
    assert len(check.problems) == 1
    assert expected in str(check.problems[0])
    assert "\n" not in str(check.problems[0])


@pytest.mark.parametrize("returned", ["'1.5'", "True", "np.float32(1.5)", "np.int64(2)"])
def test_rewards_float_turns_into_numbers_train_with_a_warning(tmp_path, base_laps, returned):
    """The simulator calls float() on the reward: these train; DRoA's validator wants a float."""
    path = tmp_path / "reward_function.py"
    path.write_text(f"import numpy as np\n\ndef reward_function(params):\n    return {returned}\n")
    check = check_reward_function(path, base_laps)
    assert check.ok, [str(p) for p in check.problems]
    if returned != "np.float32(1.5)":  # a numpy float32 is no Python float either
        assert any("not a float" in str(w) for w in check.warnings)


def test_prints_do_not_break_the_check(tmp_path, base_laps):
    path = tmp_path / "reward_function.py"
    path.write_text(
        "import numpy as np\n\ndef reward_function(params):\n"
        "    print('debug', params['x'])\n    return np.float64(0.5)\n"
    )
    check = check_reward_function(path, base_laps)
    assert check.ok, [str(p) for p in check.problems]
    assert set(check.rewards[0]) == {0.5}


ERROR, WARNING = False, True


@pytest.mark.parametrize(
    ("change", "expected", "warning"),
    [
        (
            {"action_space": [{"steering_angle": 45, "speed": 1.0}]},
            "action 0 steering_angle 45 is outside -30..30 degrees: the simulator drives it as 30",
            WARNING,
        ),
        (
            {"action_space": [{"steering_angle": 0, "speed": 9}]},
            "action 0 speed 9 is outside 0.1..4 m/s: the simulator drives it as 4",
            WARNING,
        ),
        (
            {"action_space": [{"steering_angle": 0}]},
            "action 0 lacks steering_angle or speed",
            ERROR,
        ),
        (
            {"action_space": [{"steering_angle": 0, "speed": "fast"}]},
            "steering_angle and speed must be numbers",
            ERROR,
        ),
        ({"sensor": ["FRONT_FACING_CAMERA", "RADAR"]}, "unknown sensor 'RADAR'", ERROR),
        ({"sensor": ["FRONT_FACING_CAMRA"]}, "(did you mean FRONT_FACING_CAMERA?)", ERROR),
        ({"sensor": ["LIDAR"]}, "must name exactly one camera", ERROR),
        (
            {"training_algorithm": "dqn"},
            "unknown training_algorithm 'dqn'. Fix: use 'clipped_ppo'",
            ERROR,
        ),
        (
            {"training_algorithm": "sac"},
            "training_algorithm sac needs a continuous action space",
            ERROR,
        ),
        ({"neural_network": "RESNET"}, "unknown neural_network 'RESNET'", ERROR),
        ({"action_space_type": "hybrid"}, "unknown action_space_type 'hybrid'", ERROR),
        (
            {
                "action_space_type": "continuous",
                "action_space": {
                    "speed": {"low": 2, "high": 1},
                    "steering_angle": {"low": -30, "high": 30},
                },
            },
            "action_space low is not below high (steering -30..30, speed 2..1)",
            ERROR,
        ),
        (
            {
                "action_space_type": "continuous",
                "action_space": {
                    "speed": {"low": 0.5, "high": 5},
                    "steering_angle": {"low": -30, "high": 30},
                },
            },
            "action_space high speed 5 is outside 0.1..4 m/s",
            WARNING,
        ),
        ({"version": "five"}, "version 'five' is not a number", ERROR),
    ],
)
def test_bad_model_metadata(change, expected, warning):
    problems, _ = check_model_metadata({**METADATA, **change})
    assert [p.warning for p in problems if expected in str(p)] == [warning], [
        str(p) for p in problems
    ]


def test_continuous_sac_metadata_gives_actions_across_the_ranges():
    metadata = {
        **METADATA,
        "training_algorithm": "sac",
        "action_space_type": "continuous",
        "action_space": {
            "speed": {"low": 1, "high": 2},
            "steering_angle": {"low": -20, "high": 20},
        },
    }
    problems, actions = check_model_metadata(metadata)
    assert problems == []
    assert (-20.0, 1.0) in actions and (20.0, 2.0) in actions and len(actions) == 9


@pytest.mark.parametrize(
    ("change", "expected", "warning"),
    [
        (
            {"learning_rate": 0.001},
            "unknown hyperparameter 'learning_rate': the simulator ignores it. Fix: remove it",
            WARNING,
        ),
        (
            {"num_epoch": 3},
            "unknown hyperparameter 'num_epoch': the simulator ignores it. "
            "Fix: rename it to 'num_epochs'",
            WARNING,
        ),
        ({"batch_size": 64.5}, "batch_size 64.5 is cut to 64 by the simulator", WARNING),
        (
            {"batch_size": "64.5"},
            "batch_size is '64.5', not a whole number the simulator can read",
            ERROR,
        ),
        (
            {"discount_factor": 1.5},
            "discount_factor 1.5 is outside what DeepRacer on AWS's model "
            "form accepts (between 0 and 1)",
            WARNING,
        ),
        (
            {"loss_type": "l1"},
            "loss_type 'l1' is not 'huber': the simulator uses mean squared error",
            WARNING,
        ),
        (
            {"exploration_type": "greedy"},
            "exploration_type is 'greedy'. Fix: use one of 'categorical', 'e-greedy'",
            ERROR,
        ),
        ({"lr": 0}, "lr 0 is outside what", WARNING),
        ({"sampling_frequency": 0}, "sampling_frequency 0 must be 1 or more", ERROR),
    ],
)
def test_bad_hyperparameters(change, expected, warning):
    problems = check_hyperparameters({**HYPERPARAMETERS, **change})
    assert [p.warning for p in problems if expected in str(p)] == [warning], [
        str(p) for p in problems
    ]


def test_malformed_json_and_missing_files(tmp_path):
    folder = write_folder(
        tmp_path / "cf", metadata='{"action_space": [}', hyper='{"batch_size": 64,\n "lr": 0.1,,\n}'
    )
    (folder / "reward_function.py").unlink()
    messages = [str(p) for p in validate_custom_files(folder, DeepRacerSettings(), TRACKS).problems]
    assert any(
        m.startswith("model_metadata.json:1: malformed JSON: Expecting value") for m in messages
    ), messages
    assert any(m.startswith("hyperparameters.json:2: malformed JSON") for m in messages)
    assert any(m.startswith("reward_function.py: missing from") for m in messages)


def test_unknown_world_names_close_matches(tmp_path):
    folder = write_folder(tmp_path / "cf")
    result = validate_custom_files(folder, DeepRacerSettings(world="reinvent_bass"), TRACKS)
    assert not result.ok
    assert "did you mean reinvent_base" in str(result.problems[0])
    assert "--tracks-dir" in str(result.problems[0])


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (None, None),
        (
            "def reward_function(params)\n    return 1.0\n",
            "reward_function.py:1: syntax error: expected ':'",
        ),
        ("def reward(params):\n    return 1.0\n", "no reward_function defined"),
    ],
)
def test_without_tracks_the_source_is_still_checked(tmp_path, source, expected):
    folder = write_folder(tmp_path / "cf", **({"reward": source} if source else {}))
    result = validate_custom_files(folder, DeepRacerSettings(), None)
    assert result.reward is None and result.track is None
    if expected is None:
        assert result.ok, [str(p) for p in result.problems]
    else:
        assert [expected in str(p) for p in result.problems] == [True]
