"""Checks `model_metadata.json` and `hyperparameters.json` against what the simulator accepts.

The names and limits come from the simulator's own parsing (sensors, networks, algorithms,
speed 0.1..4 m/s, steering -30..30 degrees) and from the ranges the DeepRacer console offers
for hyperparameters; a value outside them fails training minutes after the GPU started.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

from training.deepracer.problems import Problem

SENSORS = frozenset({"FRONT_FACING_CAMERA", "LEFT_CAMERA", "STEREO_CAMERAS", "observation",
                     "LIDAR", "SECTOR_LIDAR", "DISCRETIZED_SECTOR_LIDAR"})
CAMERAS = frozenset({"FRONT_FACING_CAMERA", "LEFT_CAMERA", "STEREO_CAMERAS", "observation"})
NETWORKS = ("DEEP_CONVOLUTIONAL_NETWORK_SHALLOW", "DEEP_CONVOLUTIONAL_NETWORK",
            "DEEP_CONVOLUTIONAL_NETWORK_DEEP")
ALGORITHMS = ("clipped_ppo", "sac")
SPEED_RANGE = (0.1, 4.0)
STEERING_RANGE = (-30.0, 30.0)
# DRfC's defaults/model_metadata.json: used to drive the track when the file is unusable.
DEFAULT_ACTIONS = [(-30.0, 0.6), (-15.0, 0.6), (0.0, 0.6), (15.0, 0.6), (30.0, 0.6)]

# name: (type, low, high, choices); bounds inclusive, None for open
HYPERPARAMETERS: dict[str, tuple[type, float | None, float | None, tuple[str, ...]]] = {
    "batch_size": (int, 1, 1024, ()),
    "beta_entropy": (float, 0.0, 1.0, ()),
    "discount_factor": (float, 0.0, 1.0, ()),
    "e_greedy_value": (float, 0.0, 1.0, ()),
    "epsilon_steps": (int, 1, None, ()),
    "exploration_type": (str, None, None, ("categorical", "e-greedy")),
    "loss_type": (str, None, None, ("huber", "mean squared error")),
    "lr": (float, 1e-8, 1e-2, ()),
    "num_episodes_between_training": (int, 1, 1000, ()),
    "num_epochs": (int, 1, 100, ()),
    "stack_size": (int, 1, 10, ()),
    "term_cond_avg_score": (float, 0.0, None, ()),
    "term_cond_max_episodes": (int, 1, None, ()),
    "sac_alpha": (float, 0.0, 1.0, ()),
}


def load_json(path: Path) -> tuple[object | None, list[Problem]]:
    """The parsed file, or a problem naming the line of the JSON error."""
    name = path.name
    if not path.is_file():
        return None, [Problem(name, f"missing from {path.parent}",
                              "add it (DRfC's defaults/ folder has a starting point)")]
    try:
        return json.loads(path.read_text(encoding="utf-8")), []
    except UnicodeDecodeError as error:
        return None, [Problem(name, f"not UTF-8 text: {error}", "save the file as UTF-8")]
    except json.JSONDecodeError as error:
        return None, [Problem(name, f"malformed JSON: {error.msg} (column {error.colno})",
                              "fix the JSON syntax (quotes, commas, brackets) there",
                              error.lineno)]


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _in_range(name: str, what: str, value: object, bounds: tuple[float, float]) -> list[Problem]:
    low, high = bounds
    if not _number(value):
        return [Problem(name, f"{what} is {value!r}, not a number", "write a plain number")]
    if not low <= value <= high:  # type: ignore[operator]
        return [Problem(name, f"{what} {value} is out of range",
                        f"keep it between {low:g} and {high:g}")]
    return []


def _discrete(name: str, space: object) -> tuple[list[Problem], list[tuple[float, float]]]:
    if not isinstance(space, list) or not space:
        fix = 'list actions as {"steering_angle": .., "speed": ..}'
        return [Problem(name, "action_space_type is discrete but action_space is not a "
                        "non-empty list", fix)], []
    problems, actions = [], []
    for index, action in enumerate(space):
        if not isinstance(action, dict) or not {"steering_angle", "speed"} <= action.keys():
            problems.append(Problem(name, f"action {index} lacks steering_angle or speed",
                                    'write {"steering_angle": 0, "speed": 1.0}'))
            continue
        found = _in_range(name, f"action {index} steering_angle", action["steering_angle"],
                          STEERING_RANGE)
        found += _in_range(name, f"action {index} speed", action["speed"], SPEED_RANGE)
        problems += found
        if not found:
            actions.append((float(action["steering_angle"]), float(action["speed"])))
    return problems, actions


def _continuous(name: str, space: object) -> tuple[list[Problem], list[tuple[float, float]]]:
    fix = 'write {"steering_angle": {"low": -30, "high": 30}, "speed": {"low": 0.5, "high": 2}}'
    if not isinstance(space, dict):
        return [Problem(name, "action_space_type is continuous but action_space is not an "
                        "object of ranges", fix)], []
    problems, ranges = [], {}
    for key, bounds in (("steering_angle", STEERING_RANGE), ("speed", SPEED_RANGE)):
        entry = space.get(key)
        if not isinstance(entry, dict) or not {"low", "high"} <= entry.keys():
            problems.append(Problem(name, f"action_space.{key} needs low and high", fix))
            continue
        found = _in_range(name, f"action_space.{key}.low", entry["low"], bounds)
        found += _in_range(name, f"action_space.{key}.high", entry["high"], bounds)
        if not found and entry["low"] >= entry["high"]:
            found.append(Problem(name, f"action_space.{key}.low {entry['low']} is not below "
                                 f"high {entry['high']}", "swap or widen the range"))
        problems += found
        ranges[key] = (float(entry["low"]), float(entry["high"]))
    if problems:
        return problems, []
    (s_low, s_high), (v_low, v_high) = ranges["steering_angle"], ranges["speed"]
    actions = [(s, v) for s in (s_low, (s_low + s_high) / 2, s_high)
               for v in (v_low, (v_low + v_high) / 2, v_high)]
    return [], actions


def check_model_metadata(data: object, name: str = "model_metadata.json"
                         ) -> tuple[list[Problem], list[tuple[float, float]]]:
    """Problems, and the (steering, speed) actions to drive the reward check with."""
    if not isinstance(data, dict):
        return [Problem(name, "must be a JSON object", "start from DRfC's defaults")], []
    if "action_space" not in data:
        return [Problem(name, "no action_space defined", "add an action_space")], []
    problems: list[Problem] = []
    space_type = data.get("action_space_type", "discrete")
    if space_type == "discrete":
        found, actions = _discrete(name, data["action_space"])
    elif space_type == "continuous":
        found, actions = _continuous(name, data["action_space"])
    else:
        found, actions = [Problem(name, f"unknown action_space_type {space_type!r}",
                                  "use 'discrete' or 'continuous'")], []
    problems += found
    algorithm = data.get("training_algorithm", "clipped_ppo")
    if algorithm not in ALGORITHMS:
        problems.append(Problem(name, f"unknown training_algorithm {algorithm!r}",
                                "use 'clipped_ppo' or 'sac'"))
    elif algorithm == "sac" and space_type != "continuous":
        problems.append(Problem(name, "training_algorithm sac needs a continuous action space",
                                "set action_space_type to continuous or use clipped_ppo"))
    sensors = data.get("sensor", ["FRONT_FACING_CAMERA"])
    if not isinstance(sensors, list) or not all(isinstance(s, str) for s in sensors):
        problems.append(Problem(name, "sensor must be a list of names",
                                'write "sensor": ["FRONT_FACING_CAMERA"]'))
    else:
        for sensor in sensors:
            if sensor not in SENSORS:
                near = difflib.get_close_matches(sensor, sorted(SENSORS), n=1)
                hint = f" (did you mean {near[0]}?)" if near else ""
                problems.append(Problem(name, f"unknown sensor {sensor!r}{hint}",
                                        f"use one of {', '.join(sorted(SENSORS))}"))
        if sum(s in CAMERAS for s in sensors) != 1:
            problems.append(Problem(name, f"sensor {sensors} must name exactly one camera",
                                    "keep one of FRONT_FACING_CAMERA, LEFT_CAMERA, STEREO_CAMERAS"))
        if sum(s in SENSORS - CAMERAS for s in sensors) > 1:
            problems.append(Problem(name, f"sensor {sensors} names more than one lidar",
                                    "keep at most one of LIDAR, SECTOR_LIDAR, "
                                    "DISCRETIZED_SECTOR_LIDAR"))
    network = data.get("neural_network", NETWORKS[0])
    if network not in NETWORKS:
        problems.append(Problem(name, f"unknown neural_network {network!r}",
                                f"use one of {', '.join(NETWORKS)}"))
    version = data.get("version", "5")
    try:
        float(version)
    except (TypeError, ValueError):
        problems.append(Problem(name, f"version {version!r} is not a number",
                                'write "version": "5" as DRfC does'))
    return problems, actions


def check_hyperparameters(data: object, name: str = "hyperparameters.json") -> list[Problem]:
    if not isinstance(data, dict):
        return [Problem(name, "must be a JSON object", "start from DRfC's defaults")]
    problems = []
    for key, value in data.items():
        if key not in HYPERPARAMETERS:
            near = difflib.get_close_matches(key, list(HYPERPARAMETERS), n=1)
            hint = f"rename it to {near[0]!r}" if near else "remove it"
            problems.append(Problem(name, f"unknown hyperparameter {key!r}",
                                    f"{hint}; known: {', '.join(HYPERPARAMETERS)}"))
            continue
        kind, low, high, choices = HYPERPARAMETERS[key]
        if kind is str:
            if value not in choices:
                problems.append(Problem(name, f"{key} is {value!r}",
                                        f"use one of {', '.join(map(repr, choices))}"))
            continue
        integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if not _number(value) or (kind is int and not integral):
            wanted = "an integer" if kind is int else "a number"
            problems.append(Problem(name, f"{key} is {value!r}, not {wanted}",
                                    "write a plain JSON number"))
            continue
        if (low is not None and value < low) or (high is not None and value > high):
            allowed = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
            problems.append(Problem(name, f"{key} {value} is out of range", f"keep it {allowed}"))
    return problems
