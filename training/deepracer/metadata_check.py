"""Checks `model_metadata.json` as the simulator reads it (simapp v6.0.4's
parse_model_metadata, agents/utils.py, action_space_configs.py and the agent controllers'
clamps: see custom_files.py): sensors, lidar, action space, algorithm and network.
"""

from __future__ import annotations

import difflib

from training.deepracer.custom_files import cast, choice
from training.deepracer.problems import Problem

SENSORS = frozenset(
    {
        "FRONT_FACING_CAMERA",
        "LEFT_CAMERA",
        "STEREO_CAMERAS",
        "observation",
        "LIDAR",
        "SECTOR_LIDAR",
        "DISCRETIZED_SECTOR_LIDAR",
    }
)
CAMERAS = frozenset({"FRONT_FACING_CAMERA", "LEFT_CAMERA", "STEREO_CAMERAS", "observation"})
NETWORKS = (
    "DEEP_CONVOLUTIONAL_NETWORK_SHALLOW",
    "DEEP_CONVOLUTIONAL_NETWORK",
    "DEEP_CONVOLUTIONAL_NETWORK_DEEP",
)
ALGORITHMS = ("clipped_ppo", "sac")
SPACE_TYPES = ("discrete", "continuous")
SPEED_RANGE = (0.1, 4.0)
STEERING_RANGE = (-30.0, 30.0)
LIDAR_SAMPLES = 64  # sensors/constants.py: sectors must divide it
CLIPPING_RANGE = (0.15, 12.0)  # metres the lidar measures
# DRfC's defaults/model_metadata.json: used to drive the track when the file is unusable.
DEFAULT_ACTIONS = [(-30.0, 0.6), (-15.0, 0.6), (0.0, 0.6), (15.0, 0.6), (30.0, 0.6)]


def _clamped(
    name: str, what: str, value: float, bounds: tuple[float, float], unit: str
) -> list[Problem]:
    low, high = bounds
    if low <= value <= high:
        return []
    return [
        Problem(
            name,
            f"{what} {value:g} is outside {low:g}..{high:g} {unit}: the "
            f"simulator drives it as {min(max(value, low), high):g}",
            f"keep it between {low:g} and {high:g}",
            warning=True,
        )
    ]


def _action(name: str, what: str, action: dict) -> tuple[list[Problem], tuple | None]:
    steering = cast(float, action["steering_angle"])
    speed = cast(float, action["speed"])
    if steering is None or speed is None:
        return [
            Problem(
                name,
                f"{what} is {action!r}: steering_angle and speed must be numbers",
                "write plain numbers",
            )
        ], None
    found = _clamped(name, f"{what} steering_angle", steering, STEERING_RANGE, "degrees")
    found += _clamped(name, f"{what} speed", speed, SPEED_RANGE, "m/s")
    return found, (steering, speed)


def _discrete(name: str, space: object) -> tuple[list[Problem], list[tuple[float, float]]]:
    if not isinstance(space, list) or not space:
        fix = 'list actions as {"steering_angle": .., "speed": ..}'
        return [
            Problem(
                name, "action_space_type is discrete but action_space is not a non-empty list", fix
            )
        ], []
    problems, actions = [], []
    for index, action in enumerate(space):
        if not isinstance(action, dict) or not {"steering_angle", "speed"} <= action.keys():
            problems.append(
                Problem(
                    name,
                    f"action {index} lacks steering_angle or speed",
                    'write {"steering_angle": 0, "speed": 1.0}',
                )
            )
            continue
        found, values = _action(name, f"action {index}", action)
        problems += found
        if values:
            actions.append(values)
    return problems, actions


def _continuous(name: str, space: object) -> tuple[list[Problem], list[tuple[float, float]]]:
    fix = 'write {"steering_angle": {"low": -30, "high": 30}, "speed": {"low": 0.5, "high": 2}}'
    if not isinstance(space, dict):
        return [
            Problem(
                name,
                "action_space_type is continuous but action_space is not an object of ranges",
                fix,
            )
        ], []
    entries = {key: space.get(key) for key in ("steering_angle", "speed")}
    missing = [
        k for k, e in entries.items() if not isinstance(e, dict) or not {"low", "high"} <= e.keys()
    ]
    if missing:
        return [Problem(name, f"action_space.{k} needs low and high", fix) for k in missing], []
    problems, corners = [], []
    for bound in ("low", "high"):
        found, values = _action(
            name, f"action_space {bound}", {k: e[bound] for k, e in entries.items()}
        )
        problems += found
        corners.append(values)
    if None in corners:
        return problems, []
    (s_low, v_low), (s_high, v_high) = corners
    if s_low >= s_high or v_low >= v_high:
        bounds = f"steering {s_low:g}..{s_high:g}, speed {v_low:g}..{v_high:g}"
        return [
            *problems,
            Problem(
                name, f"action_space low is not below high ({bounds})", "swap or widen the range"
            ),
        ], []
    actions = [
        (s, v)
        for s in (s_low, (s_low + s_high) / 2, s_high)
        for v in (v_low, (v_low + v_high) / 2, v_high)
    ]
    return problems, actions


def _sensors(name: str, data: dict) -> list[Problem]:
    """parse_model_metadata: version >= 2 needs `sensor`; below 2 it is ignored."""
    version = cast(float, data.get("version", 2.0 if "sensor" in data else 1.0))
    if version is None:
        return [
            Problem(
                name,
                f"version {data['version']!r} is not a number",
                'write "version": "5" as DRfC does',
            )
        ]
    if version < 2:
        if "sensor" in data and data["sensor"] != ["observation"]:
            return [
                Problem(
                    name,
                    f"version {data['version']!r} (below 2) makes the simulator "
                    f"ignore sensor {data['sensor']!r} and use one camera",
                    'write "version": "5"',
                    warning=True,
                )
            ]
        return []
    if "sensor" not in data:
        return [
            Problem(
                name,
                f"version {data.get('version')!r} needs a sensor list (the "
                "simulator stops without one)",
                'add "sensor": ["FRONT_FACING_CAMERA"]',
            )
        ]
    sensors = data["sensor"]
    if not isinstance(sensors, list) or not all(isinstance(s, str) for s in sensors):
        return [
            Problem(
                name, "sensor must be a list of names", 'write "sensor": ["FRONT_FACING_CAMERA"]'
            )
        ]
    problems = []
    for sensor in sensors:
        if sensor not in SENSORS:
            near = difflib.get_close_matches(sensor, sorted(SENSORS), n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            problems.append(
                Problem(
                    name,
                    f"unknown sensor {sensor!r}{hint}",
                    f"use one of {', '.join(sorted(SENSORS))}",
                )
            )
    if sum(s in CAMERAS for s in sensors) != 1:
        problems.append(
            Problem(
                name,
                f"sensor {sensors} must name exactly one camera",
                "keep one of FRONT_FACING_CAMERA, LEFT_CAMERA, STEREO_CAMERAS",
            )
        )
    if sum(s in SENSORS - CAMERAS for s in sensors) > 1:
        problems.append(
            Problem(
                name,
                f"sensor {sensors} names more than one lidar",
                "keep at most one of LIDAR, SECTOR_LIDAR, DISCRETIZED_SECTOR_LIDAR",
            )
        )
    return problems


def _lidar_config(name: str, config: object) -> list[Problem]:
    if not isinstance(config, dict):
        return [
            Problem(
                name,
                f"lidar_config {config!r} is not an object: the simulator uses its defaults",
                'write {"num_sectors": 8, ...} or remove it',
                warning=True,
            )
        ]
    problems = []
    if "num_sectors" in config:
        sectors = cast(int, config["num_sectors"])
        if sectors is None or sectors <= 0 or LIDAR_SAMPLES % sectors:
            problems.append(
                Problem(
                    name,
                    f"lidar_config.num_sectors {config['num_sectors']!r} "
                    f"must divide {LIDAR_SAMPLES}",
                    "use 1, 2, 4, 8, 16, 32 or 64",
                )
            )
    if "num_values_per_sector" in config:
        values = cast(int, config["num_values_per_sector"])
        if values is None or values < 1:
            problems.append(
                Problem(
                    name,
                    "lidar_config.num_values_per_sector "
                    f"{config['num_values_per_sector']!r} must be 1 or more",
                    "write a whole number, e.g. 8",
                )
            )
    if "clipping_dist" in config:
        distance = config["clipping_dist"]
        if isinstance(distance, bool) or not isinstance(distance, (int, float)):
            problems.append(
                Problem(
                    name,
                    f"lidar_config.clipping_dist {distance!r} is not a number",
                    "write metres, e.g. 2.0",
                )
            )
        else:
            problems += _clamped(
                name,
                "lidar_config.clipping_dist",
                distance,
                CLIPPING_RANGE,
                "m (what the lidar measures)",
            )
    return problems


def check_model_metadata(
    data: object, name: str = "model_metadata.json"
) -> tuple[list[Problem], list[tuple[float, float]]]:
    """Problems, and the (steering, speed) actions to drive the reward check with."""
    if not isinstance(data, dict):
        return [Problem(name, "must be a JSON object", "start from DRfC's defaults")], []
    if "action_space" not in data:
        return [Problem(name, "no action_space defined", "add an action_space")], []
    problems = _sensors(name, data)
    if "lidar_config" in data:
        problems += _lidar_config(name, data["lidar_config"])
    space_type = choice(data.get("action_space_type", "discrete"), SPACE_TYPES)
    algorithm = choice(data.get("training_algorithm", "clipped_ppo"), ALGORITHMS)
    actions: list[tuple[float, float]] = []
    if space_type is None:
        problems.append(
            Problem(
                name,
                f"unknown action_space_type {data['action_space_type']!r}",
                "use 'discrete' or 'continuous'",
            )
        )
    else:
        build = _discrete if space_type == "discrete" else _continuous
        found, actions = build(name, data["action_space"])
        problems += found
    if algorithm is None:
        problems.append(
            Problem(
                name,
                f"unknown training_algorithm {data['training_algorithm']!r}",
                "use 'clipped_ppo' or 'sac'",
            )
        )
    elif algorithm == "sac" and space_type == "discrete":
        problems.append(
            Problem(
                name,
                "training_algorithm sac needs a continuous action space",
                "set action_space_type to continuous or use clipped_ppo",
            )
        )
    network = data.get("neural_network", NETWORKS[0])
    if network not in NETWORKS:
        problems.append(
            Problem(
                name, f"unknown neural_network {network!r}", f"use one of {', '.join(NETWORKS)}"
            )
        )
    return problems, actions
