"""`training_params.yaml` and `evaluation_params.yaml`: what the simulator workers read at start.

The simulator image reads these files from `<model prefix>/` in the bucket; the keys and the
value formats (every scalar a quoted string, booleans as `True`/`False`) are the ones DRfC
writes, so a worker started by trackday behaves as one started by DRfC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from training.deepracer.layout import CUSTOM_FILE_NAMES, RunLayout
from training.deepracer.settings import DeepRacerSettings, RaceType

Params = dict[str, str | list[str] | bool]


@dataclass(frozen=True)
class Bucket:
    """The bucket a run uses, as the simulator containers reach it."""

    name: str
    region: str = "us-east-1"
    endpoint_url: str | None = None  # None on AWS S3; the S3 server's URL elsewhere


def _text(value: object) -> str:
    """The simulator parses every value from text, as DRfC passes it from its env files."""
    return str(value)


def _race_params(settings: DeepRacerSettings) -> Params:
    """Keys that depend on the race type (object avoidance, head-to-bot)."""
    params: Params = {}
    if settings.race_type == RaceType.OBJECT_AVOIDANCE:
        oa = settings.object_avoidance
        params |= {
            "NUMBER_OF_OBSTACLES": _text(oa.number_of_obstacles),
            "MIN_DISTANCE_BETWEEN_OBSTACLES": _text(oa.min_distance_between_obstacles),
            "RANDOMIZE_OBSTACLE_LOCATIONS": _text(oa.randomize_obstacle_locations),
            "IS_OBSTACLE_BOT_CAR": _text(oa.is_obstacle_bot_car),
            "OBSTACLE_TYPE": oa.obstacle_type,
        }
        if oa.object_positions:
            params["OBJECT_POSITIONS"] = list(oa.object_positions)
            params["NUMBER_OF_OBSTACLES"] = _text(len(oa.object_positions))
    if settings.race_type == RaceType.HEAD_TO_BOT:
        h2b = settings.head_to_bot
        params |= {
            "IS_LANE_CHANGE": _text(h2b.is_lane_change),
            "LOWER_LANE_CHANGE_TIME": _text(h2b.lower_lane_change_time),
            "UPPER_LANE_CHANGE_TIME": _text(h2b.upper_lane_change_time),
            "LANE_CHANGE_DISTANCE": _text(h2b.lane_change_distance),
            "NUMBER_OF_BOT_CARS": _text(h2b.number_of_bot_cars),
            "MIN_DISTANCE_BETWEEN_BOT_CARS": _text(h2b.min_distance_between_bot_cars),
            "RANDOMIZE_BOT_CAR_LOCATIONS": _text(h2b.randomize_bot_car_locations),
            "BOT_CAR_SPEED": _text(h2b.bot_car_speed),
            "PENALTY_SECONDS": _text(h2b.bot_car_penalty),
        }
    return params


def _endpoint(bucket: Bucket) -> Params:
    return {"S3_ENDPOINT_URL": bucket.endpoint_url} if bucket.endpoint_url else {}


def training_params(settings: DeepRacerSettings, bucket: Bucket) -> Params:
    """The content of `<model prefix>/training_params.yaml` for a training run."""
    layout = RunLayout.of(settings)
    car, training, cameras = settings.car, settings.training, settings.cameras
    return {
        "AWS_REGION": bucket.region,
        "JOB_TYPE": "TRAINING",
        "KINESIS_VIDEO_STREAM_NAME": cameras.kinesis_stream_name,
        "METRICS_S3_BUCKET": bucket.name,
        **_endpoint(bucket),
        "METRICS_S3_OBJECT_KEY": layout.training_metrics(),
        "MODEL_METADATA_FILE_S3_KEY": layout.model_metadata,
        "REWARD_FILE_S3_KEY": layout.reward_function,
        "ROBOMAKER_SIMULATION_JOB_ACCOUNT_ID": "Dummy",
        "NUM_WORKERS": _text(settings.workers),
        "SAGEMAKER_SHARED_S3_BUCKET": bucket.name,
        "SAGEMAKER_SHARED_S3_PREFIX": settings.model_prefix,
        "SIMTRACE_S3_BUCKET": bucket.name,
        "SIMTRACE_S3_PREFIX": settings.model_prefix,
        "TRAINING_JOB_ARN": "arn:Dummy",
        "BODY_SHELL_TYPE": car.shell,
        "CAR_COLOR": car.color.value,
        "CAR_NAME": car.name,
        "RACE_TYPE": settings.race_type.value,
        "WORLD_NAME": settings.world,
        "DISPLAY_NAME": car.display_name or car.name,
        "RACER_NAME": car.racer_name or car.name,
        "REVERSE_DIR": _text(training.reverse_direction),
        "ALTERNATE_DRIVING_DIRECTION": _text(training.alternate_driving_direction),
        "CHANGE_START_POSITION": _text(training.change_start_position),
        "ROUND_ROBIN_ADVANCE_DIST": _text(training.round_robin_advance_dist),
        "START_POSITION_OFFSET": _text(training.start_position_offset),
        "ENABLE_DOMAIN_RANDOMIZATION": _text(settings.domain_randomization),
        "MIN_EVAL_TRIALS": _text(training.min_eval_trials),
        "CAMERA_MAIN_ENABLE": _text(cameras.main),
        "CAMERA_SUB_ENABLE": _text(cameras.sub),
        "BEST_MODEL_METRIC": training.best_model_metric.value,
        "ENABLE_EXTRA_KVS_OVERLAY": _text(cameras.extra_kvs_overlay),
        **_race_params(settings),
    }


def evaluation_params(settings: DeepRacerSettings, bucket: Bucket, stamp: str) -> Params:
    """The content of `<model prefix>/evaluation_params.yaml`; `stamp` names this evaluation.

    Per-car keys are lists: one entry for the evaluated model, a second for the opponent
    model of a HEAD_TO_MODEL race.
    """
    layout = RunLayout.of(settings)
    car, evaluation, cameras = settings.car, settings.evaluation, settings.cameras
    params: Params = {
        "AWS_REGION": bucket.region,
        "JOB_TYPE": "EVALUATION",
        "KINESIS_VIDEO_STREAM_NAME": cameras.kinesis_stream_name,
        "ROBOMAKER_SIMULATION_JOB_ACCOUNT_ID": "Dummy",
        **_endpoint(bucket),
        "MODEL_S3_PREFIX": [settings.model_prefix],
        "MODEL_S3_BUCKET": [bucket.name],
        "SIMTRACE_S3_BUCKET": [bucket.name],
        "SIMTRACE_S3_PREFIX": [layout.evaluation_prefix(stamp)],
        "METRICS_S3_BUCKET": [bucket.name],
        "METRICS_S3_OBJECT_KEY": [layout.evaluation_metrics(stamp)],
        "MP4_S3_BUCKET": [bucket.name] if evaluation.save_mp4 else [],
        "MP4_S3_OBJECT_PREFIX": [layout.mp4_prefix] if evaluation.save_mp4 else [],
        "EVAL_CHECKPOINT": evaluation.checkpoint,
        "BODY_SHELL_TYPE": [car.shell],
        "CAR_COLOR": [car.color.value],
        "DISPLAY_NAME": [car.display_name or car.name],
        "RACER_NAME": [car.racer_name or car.name],
        "RACE_TYPE": settings.race_type.value,
        "WORLD_NAME": settings.world,
        "NUMBER_OF_TRIALS": _text(evaluation.number_of_trials),
        "ENABLE_DOMAIN_RANDOMIZATION": _text(settings.domain_randomization),
        "RESET_BEHIND_DIST": _text(evaluation.reset_behind_dist),
        "IS_CONTINUOUS": _text(evaluation.is_continuous),
        "NUMBER_OF_RESETS": _text(evaluation.max_resets),
        "OFF_TRACK_PENALTY": _text(evaluation.off_track_penalty),
        "COLLISION_PENALTY": _text(evaluation.collision_penalty),
        "CAMERA_MAIN_ENABLE": _text(cameras.main),
        "CAMERA_SUB_ENABLE": _text(cameras.sub),
        "REVERSE_DIR": _text(evaluation.reverse_direction),
        "ENABLE_EXTRA_KVS_OVERLAY": _text(cameras.extra_kvs_overlay),
        **_race_params(settings),
    }
    if settings.race_type == RaceType.HEAD_TO_MODEL:
        opponent = evaluation.opponent
        opponent_layout = RunLayout(model_prefix=opponent.model_prefix)
        # DRfC's scripts/evaluation/prepare-config.py: the opponent's simtrace goes to its
        # model prefix, its metrics to <opp>/metrics/EvaluationMetrics-<epoch seconds>.json.
        # Its MP4 prefix there names an unset variable (DR_EVAL_OPP_MODEL_PREFIX, so
        # `bucket/mp4`); trackday writes the opponent's video to <opp>/mp4, where the
        # simulator puts each car's video by its own prefix.
        appended = {
            "MODEL_S3_PREFIX": opponent.model_prefix,
            "MODEL_S3_BUCKET": bucket.name,
            "SIMTRACE_S3_BUCKET": bucket.name,
            "SIMTRACE_S3_PREFIX": opponent.model_prefix,
            "METRICS_S3_BUCKET": bucket.name,
            "METRICS_S3_OBJECT_KEY": f"{opponent_layout.metrics_prefix}/EvaluationMetrics-"
            f"{_epoch(stamp)}.json",
            "DISPLAY_NAME": opponent.display_name or opponent.car_name,
            "RACER_NAME": opponent.racer_name or opponent.car_name,
            "BODY_SHELL_TYPE": opponent.shell,
        }
        if evaluation.save_mp4:
            appended |= {
                "MP4_S3_BUCKET": bucket.name,
                "MP4_S3_OBJECT_PREFIX": opponent_layout.mp4_prefix,
            }
        for key, value in appended.items():
            params[key] = [*params[key], value]
        params["VIDEO_JOB_TYPE"] = "EVALUATION"
        params["CAR_COLOR"] = ["Purple", "Orange"]  # the simulator's two racing colours
        params["MODEL_NAME"] = list(params["DISPLAY_NAME"])
    return params


def _epoch(stamp: str) -> int:
    """An evaluation's stamp (YYYYmmddHHMMSS, UTC) as the epoch seconds DRfC names with."""
    return int(datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=UTC).timestamp())


def dump_params(params: Params) -> str:
    """YAML as DRfC writes it: document start marker, keys sorted, every scalar quoted."""
    return yaml.dump(params, default_flow_style=False, default_style="'", explicit_start=True)


def training_files(
    settings: DeepRacerSettings, bucket: Bucket, custom_files: Path
) -> dict[str, bytes]:
    """Every object a training run needs in the bucket before its services start, by key:
    the custom files, the reward function's copy next to the model (exports and DeepRacer on
    AWS's import read it there) and `training_params.yaml` (as DRfC's dr-upload-custom-files and
    dr-start-training write them)."""
    layout = RunLayout.of(settings)
    files = {
        layout.custom_file(name): (custom_files / name).read_bytes() for name in CUSTOM_FILE_NAMES
    }
    files[layout.run_reward_function] = files[layout.reward_function]
    files[layout.training_params] = dump_params(training_params(settings, bucket)).encode()
    return files


def evaluation_files(settings: DeepRacerSettings, bucket: Bucket, stamp: str) -> dict[str, bytes]:
    """`evaluation_params.yaml` for one evaluation, named by `stamp` (YYYYmmddHHMMSS)."""
    layout = RunLayout.of(settings)
    return {
        layout.evaluation_params: dump_params(evaluation_params(settings, bucket, stamp)).encode()
    }
