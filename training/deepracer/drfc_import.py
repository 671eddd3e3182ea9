"""Converts a DRfC installation (`system.env`, `run.env`, `custom_files/`) into trackday's
stack config and custom-files folder, and says which settings had no place to go.

DRfC's env files are `KEY=VALUE` lines with `#` comments, optional quotes, and `$KEY`
references to earlier keys (`DR_DISPLAY_NAME=$DR_CAR_NAME`).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError

from training.deepracer.layout import CUSTOM_FILE_NAMES
from training.deepracer.settings import DeepRacerSettings

STACK_KEY = "trackday:deepracer"
_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")

# DRfC key -> dotted path in DeepRacerSettings.
MAPPING: dict[str, str] = {
    "DR_RUN_ID": "run_id",
    "DR_WORLD_NAME": "world",
    "DR_RACE_TYPE": "race_type",
    "DR_CAR_NAME": "car.name",
    "DR_CAR_BODY_SHELL_TYPE": "car.shell",
    "DR_CAR_COLOR": "car.color",
    "DR_DISPLAY_NAME": "car.display_name",
    "DR_RACER_NAME": "car.racer_name",
    "DR_ENABLE_DOMAIN_RANDOMIZATION": "domain_randomization",
    "DR_WORKERS": "workers",
    "DR_LOCAL_S3_MODEL_PREFIX": "model_prefix",
    "DR_LOCAL_S3_CUSTOM_FILES_PREFIX": "custom_files_prefix",
    "DR_LOCAL_S3_TRAINING_PARAMS_FILE": "training_params_file",
    "DR_LOCAL_S3_EVAL_PARAMS_FILE": "evaluation_params_file",
    "DR_LOCAL_S3_PRETRAINED": "pretrained.enabled",
    "DR_LOCAL_S3_PRETRAINED_PREFIX": "pretrained.model_prefix",
    "DR_LOCAL_S3_PRETRAINED_CHECKPOINT": "pretrained.checkpoint",
    "DR_TRAIN_CHANGE_START_POSITION": "training.change_start_position",
    "DR_TRAIN_REVERSE_DIRECTION": "training.reverse_direction",
    "DR_TRAIN_ALTERNATE_DRIVING_DIRECTION": "training.alternate_driving_direction",
    "DR_TRAIN_START_POSITION_OFFSET": "training.start_position_offset",
    "DR_TRAIN_ROUND_ROBIN_ADVANCE_DIST": "training.round_robin_advance_dist",
    "DR_TRAIN_MIN_EVAL_TRIALS": "training.min_eval_trials",
    "DR_TRAIN_BEST_MODEL_METRIC": "training.best_model_metric",
    "DR_TRAIN_RTF": "training.real_time_factor",
    "DR_TRAIN_MAX_STEPS_PER_ITERATION": "training.max_steps_per_iteration",
    "DR_EVAL_NUMBER_OF_TRIALS": "evaluation.number_of_trials",
    "DR_EVAL_IS_CONTINUOUS": "evaluation.is_continuous",
    "DR_EVAL_MAX_RESETS": "evaluation.max_resets",
    "DR_EVAL_OFF_TRACK_PENALTY": "evaluation.off_track_penalty",
    "DR_EVAL_COLLISION_PENALTY": "evaluation.collision_penalty",
    "DR_EVAL_SAVE_MP4": "evaluation.save_mp4",
    "DR_EVAL_CHECKPOINT": "evaluation.checkpoint",
    "DR_EVAL_DEBUG_REWARD": "evaluation.debug_reward",
    "DR_EVAL_RESET_BEHIND_DIST": "evaluation.reset_behind_dist",
    "DR_EVAL_REVERSE_DIRECTION": "evaluation.reverse_direction",
    "DR_EVAL_RTF": "evaluation.real_time_factor",
    "DR_EVAL_OPP_S3_MODEL_PREFIX": "evaluation.opponent.model_prefix",
    "DR_EVAL_OPP_CAR_BODY_SHELL_TYPE": "evaluation.opponent.shell",
    "DR_EVAL_OPP_CAR_NAME": "evaluation.opponent.car_name",
    "DR_EVAL_OPP_DISPLAY_NAME": "evaluation.opponent.display_name",
    "DR_EVAL_OPP_RACER_NAME": "evaluation.opponent.racer_name",
    "DR_OA_NUMBER_OF_OBSTACLES": "object_avoidance.number_of_obstacles",
    "DR_OA_MIN_DISTANCE_BETWEEN_OBSTACLES": "object_avoidance.min_distance_between_obstacles",
    "DR_OA_RANDOMIZE_OBSTACLE_LOCATIONS": "object_avoidance.randomize_obstacle_locations",
    "DR_OA_IS_OBSTACLE_BOT_CAR": "object_avoidance.is_obstacle_bot_car",
    "DR_OA_OBSTACLE_TYPE": "object_avoidance.obstacle_type",
    "DR_OA_OBJECT_POSITIONS": "object_avoidance.object_positions",
    "DR_H2B_IS_LANE_CHANGE": "head_to_bot.is_lane_change",
    "DR_H2B_LOWER_LANE_CHANGE_TIME": "head_to_bot.lower_lane_change_time",
    "DR_H2B_UPPER_LANE_CHANGE_TIME": "head_to_bot.upper_lane_change_time",
    "DR_H2B_LANE_CHANGE_DISTANCE": "head_to_bot.lane_change_distance",
    "DR_H2B_NUMBER_OF_BOT_CARS": "head_to_bot.number_of_bot_cars",
    "DR_H2B_MIN_DISTANCE_BETWEEN_BOT_CARS": "head_to_bot.min_distance_between_bot_cars",
    "DR_H2B_RANDOMIZE_BOT_CAR_LOCATIONS": "head_to_bot.randomize_bot_car_locations",
    "DR_H2B_BOT_CAR_SPEED": "head_to_bot.bot_car_speed",
    "DR_H2B_BOT_CAR_PENALTY": "head_to_bot.bot_car_penalty",
    "DR_SIMAPP_SOURCE": "simulator.image",
    "DR_SIMAPP_VERSION": "simulator.tag",
    "DR_GAZEBO_ARGS": "simulator.gazebo_args",
    "DR_SAGEMAKER_CUDA_DEVICES": "simulator.sagemaker_cuda_devices",
    "DR_ROBOMAKER_CUDA_DEVICES": "simulator.robomaker_cuda_devices",
    "DR_CAMERA_MAIN_ENABLE": "cameras.main",
    "DR_CAMERA_SUB_ENABLE": "cameras.sub",
    "DR_CAMERA_KVS_ENABLE": "cameras.kvs",
    "DR_KINESIS_STREAM_NAME": "cameras.kinesis_stream_name",
    "DR_ENABLE_EXTRA_KVS_OVERLAY": "cameras.extra_kvs_overlay",
    "DR_GUI_ENABLE": "cameras.gui",
    "DR_CLOUD_WATCH_ENABLE": "cloudwatch.enabled",
    "DR_CLOUD_WATCH_LOG_STREAM_PREFIX": "cloudwatch.log_stream_prefix",
    "DR_UPLOAD_S3_BUCKET": "upload.bucket",
    "DR_UPLOAD_S3_PREFIX": "upload.model_prefix",
    "DR_DROA_URL": "upload.droa_url",
    "DR_DROA_USERNAME": "upload.droa_username",
}

# Keys DRfC derives from others: mapped when they hold the derived value, unmapped otherwise.
DERIVED: dict[str, str] = {
    "DR_LOCAL_S3_MODEL_METADATA_KEY": "{DR_LOCAL_S3_CUSTOM_FILES_PREFIX}/model_metadata.json",
    "DR_LOCAL_S3_HYPERPARAMETERS_KEY": "{DR_LOCAL_S3_CUSTOM_FILES_PREFIX}/hyperparameters.json",
    "DR_LOCAL_S3_REWARD_KEY": "{DR_LOCAL_S3_CUSTOM_FILES_PREFIX}/reward_function.py",
    "DR_LOCAL_S3_METRICS_PREFIX": "{DR_LOCAL_S3_MODEL_PREFIX}/metrics",
}
DERIVED_DEFAULTS = {
    "DR_LOCAL_S3_CUSTOM_FILES_PREFIX": "custom_files",
    "DR_LOCAL_S3_MODEL_PREFIX": "rl-deepracer-sagemaker",
}

# Keys that are only mapped when they hold the one value trackday supports.
SUPPORTED_ONLY = {"DR_TRAIN_MULTI_CONFIG": "False"}

# Why the rest have no run setting.
REASONS: dict[str, str] = {
    "DR_CLOUD": "the stack's target decides the cloud",
    "DR_AWS_APP_REGION": "the stack's region is used",
    "DR_LOCAL_S3_BUCKET": "the stack creates the bucket",
    "DR_LOCAL_S3_PROFILE": "nodes reach the bucket with their identity, not a profile",
    "DR_UPLOAD_S3_PROFILE": "uploads use the caller's cloud credentials, not a profile",
    "DR_LOCAL_S3_AUTH_MODE": "nodes reach the bucket with their identity",
    "DR_MINIO_IMAGE": "no MinIO: targets without S3 get rclone's S3 server",
    "DR_REMOTE_MINIO_URL": "the stack provides the S3 endpoint",
    "DR_DOCKER_STYLE": "trackday always deploys on Docker Swarm",
    "DR_ANALYSIS_IMAGE": "log analysis is not deployed by trackday",
    "DR_ROBOMAKER_MOUNT_LOGS": "logs are read with `trackday dr logs`",
    "DR_ROBOMAKER_MOUNT_SIMAPP_DIR": "mounting a simapp checkout is a developer option",
    "DR_ROBOMAKER_MOUNT_SCRIPTS_DIR": "mounting scripts is a developer option",
    "DR_HOST_X": "no X server on cloud nodes",
    "DR_DISPLAY": "no X server on cloud nodes",
    "DR_WEBVIEWER_PORT": "the web viewer is not deployed (nothing listens publicly)",
    "DR_QUIET_ACTIVATE": "there is no activate script",
    "DR_TELEGRAF_HOST": "the metrics stack is not deployed",
    "DR_TELEGRAF_PORT": "the metrics stack is not deployed",
    "DR_TRAIN_MULTI_CONFIG": "multi-config training (worker-N.env) is not supported",
}


class ImportProblem(ValueError):
    """The DRfC folder cannot be imported; the message names the file and key."""


@dataclass(frozen=True)
class Unmapped:
    file: str
    key: str
    value: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}={self.value} ({self.reason})"


@dataclass
class ImportResult:
    settings: DeepRacerSettings
    values: dict  # only what the env files set, typed, with the stack file's camelCase keys
    unmapped: list[Unmapped] = field(default_factory=list)
    copied: list[Path] = field(default_factory=list)

    def stack_yaml(self) -> str:
        """A fragment to merge into `Pulumi.<stack>.yaml` (camelCase keys, as stack files use)."""
        return yaml.safe_dump({"config": {STACK_KEY: self.values}}, sort_keys=False)


def parse_env(text: str, known: dict[str, str] | None = None) -> dict[str, str]:
    """KEY=VALUE lines; `#` comments; quotes stripped; `$KEY`/`${KEY}` expanded from earlier."""
    scope = dict(known or {})
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            continue
        key, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        value = _REFERENCE.sub(lambda m: scope.get(m.group(1) or m.group(2), ""), value)
        scope[key] = values[key] = value
    return values


def _is_placeholder(value: str) -> bool:
    return value.startswith("<") and value.endswith(">")


def _convert(path: str, value: str) -> object:
    if path == "object_avoidance.object_positions":
        return [p.strip() for p in value.replace('"', "").split(";") if p.strip()]
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _put(tree: dict, path: str, value: object) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def _lookup_key(loc: tuple) -> str:
    path = ".".join(str(p) for p in loc)
    return next((k for k, v in MAPPING.items() if v == path), path)


# What DRfC's init.sh writes for DR_UPLOAD_S3_BUCKET when there is no upload bucket.
NOT_DEFINED = "not-defined"
_EXPERIMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _run_folder(drfc_dir: Path, system: dict[str, str], experiment: str | None) -> Path:
    """Where run.env and custom_files/ are: the DRfC folder, or with an experiment
    (`experiment`, else DR_EXPERIMENT_NAME in system.env) its `experiments/<name>/`, as
    DRfC's bin/activate.sh reads them."""
    name = experiment or system.get("DR_EXPERIMENT_NAME", "")
    if not name:
        return drfc_dir
    if not _EXPERIMENT.match(name) or ".." in name:
        raise ImportProblem(
            f"experiment {name!r} is not a folder name: use letters, digits, '-', '_', '.'"
        )
    folder = drfc_dir / "experiments" / name
    if not folder.is_dir():
        raise ImportProblem(
            f"{folder} not found: experiment {name} has no folder (DRfC keeps "
            "its run.env and custom_files/ there)"
        )
    return folder


def import_drfc(
    drfc_dir: Path, out_dir: Path | None = None, experiment: str | None = None
) -> ImportResult:
    """Read DRfC's env files (and copy its custom files into `out_dir/custom_files`)."""
    system_path = drfc_dir / "system.env"
    if not system_path.is_file():
        raise ImportProblem(
            f"{system_path} not found: point at a DRfC folder (the one with system.env and run.env)"
        )
    system = parse_env(system_path.read_text(encoding="utf-8"))
    run_folder = _run_folder(drfc_dir, system, experiment)
    run_path = run_folder / "run.env"
    if not run_path.is_file():
        raise ImportProblem(
            f"{run_path} not found: point at a DRfC folder (the one with system.env and run.env)"
        )
    scope: dict[str, str] = dict(system)
    origin: dict[str, str] = dict.fromkeys(system, "system.env")
    parsed = parse_env(run_path.read_text(encoding="utf-8"), scope)
    scope |= parsed
    origin |= dict.fromkeys(parsed, str(run_path.relative_to(drfc_dir)))
    scope.pop("DR_EXPERIMENT_NAME", None)  # read above: where the run's files are
    if scope.get("DR_UPLOAD_S3_BUCKET") == NOT_DEFINED:
        scope["DR_UPLOAD_S3_BUCKET"] = ""  # no upload bucket, not one named so
    values: dict = {}
    unmapped: list[Unmapped] = []
    for key, value in scope.items():
        file = origin[key]
        if key in MAPPING:
            if value == "" or _is_placeholder(value):
                continue  # unset: trackday's default is DRfC's
            model_prefix = (DERIVED_DEFAULTS | scope)["DR_LOCAL_S3_MODEL_PREFIX"]
            if key == "DR_UPLOAD_S3_PREFIX" and value == f"{model_prefix}-1":
                continue  # DRfC's derived default; trackday derives the same
            _put(values, MAPPING[key], _convert(MAPPING[key], value))
        elif key in DERIVED:
            expected = DERIVED[key].format(**(DERIVED_DEFAULTS | scope))
            if value != expected:
                unmapped.append(Unmapped(file, key, value, f"trackday always uses {expected}"))
        elif key in SUPPORTED_ONLY and value.lower() == SUPPORTED_ONLY[key].lower():
            continue
        else:
            unmapped.append(
                Unmapped(file, key, value, REASONS.get(key, "no trackday setting for it"))
            )
    copied: list[Path] = []
    if out_dir is not None:
        target = out_dir / "custom_files"
        values["custom_files_dir"] = str(target)
        copied, extra = _copy_custom_files(run_folder / "custom_files", target)
        unmapped += extra
    try:
        settings = DeepRacerSettings.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        key = _lookup_key(first["loc"])
        raise ImportProblem(
            f"{origin.get(key, 'run.env')}: {key}={scope.get(key, '')!s}: "
            f"{first['msg'].removeprefix('Value error, ')}"
        ) from error
    typed = settings.model_dump(by_alias=True, mode="json", exclude_unset=True)
    return ImportResult(settings, typed, unmapped, copied)


def _copy_custom_files(source: Path, target: Path) -> tuple[list[Path], list[Unmapped]]:
    if not source.is_dir():
        raise ImportProblem(
            f"{source} not found: DRfC keeps reward_function.py, "
            "model_metadata.json and hyperparameters.json there"
        )
    target.mkdir(parents=True, exist_ok=True)
    copied, extra = [], []
    for path in sorted(source.iterdir()):
        if path.name in CUSTOM_FILE_NAMES:
            copied.append(Path(shutil.copy2(path, target / path.name)))
        else:
            extra.append(
                Unmapped(
                    "custom_files",
                    path.name,
                    "",
                    "not one of the three files a run uses; not copied",
                )
            )
    return copied, extra
