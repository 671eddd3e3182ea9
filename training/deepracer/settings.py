"""Run settings of a DeepRacer training or evaluation, as typed config.

The stack config (infra/config.py) embeds `DeepRacerSettings` as its `deepracer` section, so a
bad value fails before any resource exists. Every default equals DRfC's (`template-run.env`,
`template-system.env`), so a DRfC user gets the run they expect. This module imports neither
Pulumi nor the CLI.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

SIMAPP_IMAGE = "awsdeepracercommunity/deepracer-simapp"
SIMAPP_VERSION = "6.0.4"  # DRfC defaults/dependencies.json
OBSTACLE_TYPES = ("box_obstacle", "deepracer_box_obstacle", "amazon_box_obstacle")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$")

Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]


class RaceType(StrEnum):
    TIME_TRIAL = "TIME_TRIAL"
    OBJECT_AVOIDANCE = "OBJECT_AVOIDANCE"
    HEAD_TO_BOT = "HEAD_TO_BOT"
    HEAD_TO_MODEL = "HEAD_TO_MODEL"


class CarColor(StrEnum):
    """The colours the simulator can paint a car (its CarColorType)."""

    BLACK = "Black"
    GREY = "Grey"
    BLUE = "Blue"
    RED = "Red"
    ORANGE = "Orange"
    WHITE = "White"
    PURPLE = "Purple"
    # the F1 body shells' colours (simapp v6.0.4 bundle/markov/rollout_constants.py)
    F1_1E73FC = "f1_car_1e73fc"
    F1_7102BB = "f1_car_7102bb"
    F1_CF15FC = "f1_car_cf15fc"
    F1_EB0000 = "f1_car_eb0000"
    F1_FF9900 = "f1_car_ff9900"
    F1_FFFE01 = "f1_car_fffe01"
    F1_9EFC03 = "f1_car_9efc03"
    F1_1BD900 = "f1_car_1bd900"
    F1_73FDF9 = "f1_car_73fdf9"
    F1_000000 = "f1_car_000000"
    F1_BCCACC = "f1_car_bccacc"
    F1_FFFFFF = "f1_car_ffffff"


class BestModelMetric(StrEnum):
    PROGRESS = "progress"
    REWARD = "reward"
    LAPTIME = "laptime"


class _Section(BaseModel):
    """Stack-file keys are camelCase like the rest of the stack config (infra/config.py);
    Python reads snake_case. Unknown keys are errors: a typo must not fall back to a default."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


def _prefix(value: str) -> str:
    if not _PREFIX.match(value) or ".." in value or value.endswith("/"):
        raise ValueError(
            f"{value!r} is not a bucket prefix: use letters, digits, '-', '_', '.', '/' "
            "(no leading or trailing '/')"
        )
    return value


Prefix = Annotated[str, AfterValidator(_prefix)]


class Car(_Section):
    """DR_CAR_*: the car the model drives, as shown in videos and leaderboards."""

    name: str = "FastCar"
    shell: str = "deepracer"  # DR_CAR_BODY_SHELL_TYPE
    color: CarColor = CarColor.RED
    display_name: str | None = None  # unset: the car name, as DRfC's $DR_CAR_NAME
    racer_name: str | None = None  # unset: the car name


class ObjectAvoidance(_Section):
    """DR_OA_*: obstacles placed on the track for OBJECT_AVOIDANCE races."""

    number_of_obstacles: int = Field(6, ge=1, le=20)
    min_distance_between_obstacles: Positive = 2.0
    randomize_obstacle_locations: bool = False
    is_obstacle_bot_car: bool = False
    obstacle_type: Literal["box_obstacle", "deepracer_box_obstacle", "amazon_box_obstacle"] = (
        "box_obstacle"
    )
    # "progress,lane" pairs: progress is a fraction of the lap (0..1), lane 1 inner, -1 outer
    object_positions: list[str] = Field(default_factory=list)

    @field_validator("object_positions")
    @classmethod
    def _positions(cls, positions: list[str]) -> list[str]:
        for position in positions:
            parts = position.split(",")
            ok = len(parts) == 2
            try:
                ok = ok and 0.0 <= float(parts[0]) <= 1.0 and int(parts[1]) in (1, -1)
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(
                    f"object position {position!r} must be 'PROGRESS,LANE' with PROGRESS "
                    "between 0 and 1 and LANE 1 (inner) or -1 (outer), e.g. '0.25,1'"
                )
        return positions


class HeadToBot(_Section):
    """DR_H2B_*: bot cars driving the track for HEAD_TO_BOT races."""

    is_lane_change: bool = False
    lower_lane_change_time: Positive = 3.0
    upper_lane_change_time: Positive = 5.0
    lane_change_distance: Positive = 1.0
    number_of_bot_cars: int = Field(3, ge=0, le=10)
    min_distance_between_bot_cars: Positive = 2.0
    randomize_bot_car_locations: bool = False
    bot_car_speed: Positive = 0.2
    bot_car_penalty: NonNegative = 5.0

    @model_validator(mode="after")
    def _lane_change_window(self) -> HeadToBot:
        if self.lower_lane_change_time > self.upper_lane_change_time:
            raise ValueError(
                f"lower_lane_change_time ({self.lower_lane_change_time}) must not exceed "
                f"upper_lane_change_time ({self.upper_lane_change_time})"
            )
        return self


class Opponent(_Section):
    """DR_EVAL_OPP_*: the second model in a HEAD_TO_MODEL evaluation."""

    model_prefix: Prefix = "rl-deepracer-sagemaker"
    shell: str = "deepracer"
    car_name: str = "FasterCar"
    display_name: str | None = None  # unset: the car name
    racer_name: str | None = None  # unset: the car name


class Pretrained(_Section):
    """DR_LOCAL_S3_PRETRAINED*: start from an earlier model instead of from scratch."""

    enabled: bool = False
    model_prefix: Prefix = "rl-sagemaker-pretrained"
    checkpoint: str = "last"  # last or best

    @field_validator("checkpoint", mode="before")
    @classmethod
    def _checkpoint(cls, value: object) -> object:
        """The trainer reads `best` (any case) and takes anything else as the last
        checkpoint (simapp v6.0.4 bundle/markov/training_worker.py): a number would start
        silently from the last one, so only the two it understands are accepted."""
        text = str(value).lower()  # lower-cased, not stripped: " best" would mean last
        if text not in ("last", "best"):
            raise ValueError(
                f"checkpoint {value!r} must be 'last' or 'best': the trainer "
                "starts from one of those two (a number is taken as 'last'); "
                "to start from another, `trackday dr upload-model --checkpoint "
                "N --local` it to a prefix of its own and start from that"
            )
        return text


class Training(_Section):
    """DR_TRAIN_*: where episodes start and how the best checkpoint is chosen."""

    change_start_position: bool = True
    reverse_direction: bool = False
    alternate_driving_direction: bool = False
    start_position_offset: float = Field(0.0, ge=0.0, le=1.0)
    round_robin_advance_dist: float = Field(0.05, gt=0.0, le=1.0)
    min_eval_trials: int = Field(5, ge=1)
    best_model_metric: BestModelMetric = BestModelMetric.PROGRESS
    real_time_factor: Positive | None = None  # DR_TRAIN_RTF
    max_steps_per_iteration: int | None = Field(None, ge=1)
    # A GitOps run (`deepracerRun: training`) may start on a prefix holding a model only
    # when this says to delete it first (DRfC's `dr-start-training -w`).
    wipe: bool = False


class Evaluation(_Section):
    """DR_EVAL_*: how an evaluation run scores a model."""

    number_of_trials: int = Field(3, ge=1)
    is_continuous: bool = True
    max_resets: int = Field(100, ge=0)
    off_track_penalty: NonNegative = 5.0
    collision_penalty: NonNegative = 5.0
    save_mp4: bool = False
    checkpoint: Literal["last", "best"] = "last"
    debug_reward: bool = False
    reset_behind_dist: Positive = 1.0
    reverse_direction: bool = False
    real_time_factor: Positive | None = None  # DR_EVAL_RTF
    opponent: Opponent = Field(default_factory=Opponent)


class Simulator(_Section):
    """DR_SIMAPP_*: the community simulator image, one image for trainer and workers."""

    image: str = SIMAPP_IMAGE
    tag: str = f"{SIMAPP_VERSION}-gpu"
    gazebo_args: str = ""  # DR_GAZEBO_ARGS, handed to Gazebo by the workers
    # DR_SAGEMAKER_CUDA_DEVICES / DR_ROBOMAKER_CUDA_DEVICES: which of a node's GPUs the
    # trainer's SageMaker container and the workers see (unset: what Swarm assigned)
    sagemaker_cuda_devices: str | None = None
    robomaker_cuda_devices: str | None = None

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str) -> str:
        if not re.fullmatch(r"[\w.]+(-[\w.]+)*-(gpu|cpu)", value):
            raise ValueError(
                f"simulator tag {value!r} must end in '-gpu' or '-cpu', e.g. '{SIMAPP_VERSION}-gpu'"
            )
        return value

    @property
    def reference(self) -> str:
        return f"{self.image}:{self.tag}"

    @property
    def uses_gpu(self) -> bool:
        return self.tag.endswith("-gpu")


class Cameras(_Section):
    """DR_CAMERA_*, DR_KINESIS_STREAM_NAME, DR_GUI_ENABLE: video out of the simulator."""

    main: bool = True
    sub: bool = False
    kvs: bool = True
    kinesis_stream_name: str = ""
    extra_kvs_overlay: bool = False
    gui: bool = False


class CloudWatch(_Section):
    """DR_CLOUD_WATCH_*: send container logs to CloudWatch Logs (AWS targets)."""

    enabled: bool = False
    log_stream_prefix: str = ""


class Upload(_Section):
    """DR_UPLOAD_S3_*, DR_DROA_*: where `upload-model` copies a model, and the DeepRacer on
    AWS site `trackday dr droa import-model` imports into."""

    bucket: str | None = None
    model_prefix: Prefix | None = None  # DRfC: $DR_LOCAL_S3_MODEL_PREFIX-1
    # DR_DROA_URL / DR_DROA_USERNAME: the DeepRacer on AWS site `trackday dr droa` talks to
    # and who signs in (the password is asked for, or read from TRACKDAY_DROA_PASSWORD)
    droa_url: str | None = None
    droa_username: str | None = None


class DeepRacerSettings(_Section):
    """Everything one DeepRacer run needs besides infrastructure (`trackday:deepracer`)."""

    run_id: int = Field(0, ge=0, le=99)
    world: str = "reinvent_base"
    race_type: RaceType = RaceType.TIME_TRIAL
    car: Car = Field(default_factory=Car)
    domain_randomization: bool = False
    workers: int = Field(1, ge=1, le=32)
    model_prefix: Prefix = "rl-deepracer-sagemaker"
    custom_files_prefix: Prefix = "custom_files"
    custom_files_dir: str = "custom_files"  # local folder with the three files, uploaded by a run
    training_params_file: str = "training_params.yaml"
    evaluation_params_file: str = "evaluation_params.yaml"
    pretrained: Pretrained = Field(default_factory=Pretrained)
    training: Training = Field(default_factory=Training)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    object_avoidance: ObjectAvoidance = Field(default_factory=ObjectAvoidance)
    head_to_bot: HeadToBot = Field(default_factory=HeadToBot)
    simulator: Simulator = Field(default_factory=Simulator)
    cameras: Cameras = Field(default_factory=Cameras)
    cloudwatch: CloudWatch = Field(default_factory=CloudWatch)
    upload: Upload = Field(default_factory=Upload)
    # The workers render on an X server with GPU OpenGL (DRfC's DR_HOST_X): the nodes'
    # headless one (infra/xorg.py), or on the local target this machine's $DISPLAY.
    # Unset: on where the nodes have GPUs (cloud targets), off on the local target.
    opengl: bool | None = None
    # Each worker reserves a GPU of its own on nodes that advertise theirs (Swarm gives it one
    # the trainer and other workers do not hold); false: the workers share the node's first
    # GPU, as DRfC runs them (several workers on a one-GPU node). Unset: own GPUs where the
    # workers have nodes of their own, shared on a one-node stack.
    gpu_per_worker: bool | None = None

    @field_validator("world")
    @classmethod
    def _world(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                f"world {value!r} is not a track name: use the simulator's world name, "
                "e.g. 'reinvent_base' or '2022_april_open_ccw'"
            )
        return value

    @field_validator("training_params_file", "evaluation_params_file")
    @classmethod
    def _yaml_name(cls, value: str) -> str:
        if "/" in value or not value.endswith(".yaml"):
            raise ValueError(f"{value!r} must be a plain file name ending in .yaml")
        return value

    @model_validator(mode="after")
    def _distinct_pretrained(self) -> DeepRacerSettings:
        if self.pretrained.enabled and self.pretrained.model_prefix == self.model_prefix:
            raise ValueError(
                f"pretrained.model_prefix equals model_prefix ({self.model_prefix!r}): "
                "training would overwrite the model it starts from; pick a new model_prefix"
            )
        return self

    @property
    def upload_model_prefix(self) -> str:
        return self.upload.model_prefix or f"{self.model_prefix}-1"


def increment_model(
    settings: DeepRacerSettings, new_prefix: str | None = None, delimiter: str = "-"
) -> DeepRacerSettings:
    """`increment-training`: the current model becomes the pretrained one of a new prefix.

    Like DRfC's dr-increment-training: a trailing number after the delimiter is bumped
    (`model-3` -> `model-4`), otherwise `-1` is appended.
    """
    current = settings.model_prefix
    if new_prefix is None:
        head, sep, tail = current.rpartition(delimiter)
        new_prefix = (
            f"{head}{sep}{int(tail) + 1}" if sep and tail.isdigit() else (f"{current}{delimiter}1")
        )
    data = settings.model_dump()
    data["model_prefix"] = new_prefix
    data["pretrained"] = {**data["pretrained"], "enabled": True, "model_prefix": current}
    return DeepRacerSettings.model_validate(data)


def describe_error(error: Exception, section: str = "trackday:deepracer") -> str:
    """One line per bad value of a pydantic ValidationError: key path, value, what is allowed."""
    if not isinstance(error, ValidationError):
        return str(error)
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in (section, *item["loc"]))
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown setting (check the spelling against the documented keys)"
        value = item.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"{where}: {message}{shown}")
    return "\n".join(lines)
