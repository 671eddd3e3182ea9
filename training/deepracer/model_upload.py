"""`upload-model` (and DRoA's import): one checkpoint of a run in the layout importers read.

The layout is the one DRfC's scripts/upload/upload-model.sh and scripts/droa/import_model.py
write and DeepRacer on AWS's model import reads: under the target prefix `model/` holds the
chosen checkpoint's TensorFlow files, its frozen graph `model_<n>.pb`, `model_metadata.json`,
`.coach_checkpoint` and `deepracer_checkpoints.json` naming that checkpoint as both best and
last (records as the trainer writes them, with `time_stamp` and `avg_comp_pct`); beside it
`model_metadata.json` (DRoA's API reads it at the root), `reward_function.py` (from the run,
else from the custom files it started with), `ip/hyperparameters.json`, the whole `metrics/`
prefix, and a `training_params.yaml` written for the target, not copied from the source.
No TensorFlow `model/checkpoint` file: neither DRfC nor the importers write one. A pure plan:
the caller copies and writes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from training.deepracer.layout import HYPERPARAMETERS, MODEL_METADATA, RunLayout
from training.deepracer.params import Bucket, Params, training_params
from training.deepracer.settings import DeepRacerSettings

_CHECKPOINT_NAME = re.compile(r"^(\d+)_Step-(\d+)\.ckpt$")
_DIRECTION = re.compile(r"_(cw|ccw)$")
TRAINING_PARAMS = "training_params.yaml"
NUMBERED_COMPLETION = 50.0  # DRfC's record for a checkpoint picked by number


class ModelUploadError(ValueError):
    """The run lacks what an importable model needs; the message says what and how to fix."""


@dataclass(frozen=True)
class UploadPlan:
    checkpoint: str
    copies: dict[str, str] = field(default_factory=dict)  # target key -> source key
    writes: dict[str, bytes] = field(default_factory=dict)  # target key -> content


def export_params(
    settings: DeepRacerSettings, bucket: str, region: str, prefix: str, droa: bool = False
) -> Params:
    """`training_params.yaml` of an exported model: the run's settings, the target's bucket
    and keys (DRfC's upload/prepare-config.py). For DRoA the world carries no direction
    suffix and TRACK_DIRECTION_CLOCKWISE says the sense, as DRfC's import_model.py makes it."""
    params = training_params(
        settings.model_copy(update={"model_prefix": prefix}), Bucket(bucket, region)
    )
    params |= {
        "METRICS_S3_OBJECT_KEY": f"{prefix}/TrainingMetrics.json",
        "MODEL_METADATA_FILE_S3_KEY": f"{prefix}/model/{MODEL_METADATA}",
        "REWARD_FILE_S3_KEY": f"{prefix}/reward_function.py",
    }
    if droa:
        world = settings.world
        match = _DIRECTION.search(world)
        params["WORLD_NAME"] = _DIRECTION.sub("", world)
        clockwise = match.group(1) == "cw" if match else not settings.training.reverse_direction
        params["TRACK_DIRECTION_CLOCKWISE"] = clockwise  # a YAML boolean, as DRfC writes it
    return params


def _pick(keys: set[str], model_dir: str, records: dict, choice: str, now: int) -> tuple[str, dict]:
    """The checkpoint name and its record: `last`, `best`, or a checkpoint number."""
    if choice in ("last", "best"):
        record = records.get(f"{choice}_checkpoint") or {}
        if not record.get("name"):
            raise ModelUploadError(
                f"{model_dir}/deepracer_checkpoints.json names no {choice} checkpoint yet; "
                "wait for the first evaluated iteration, or pass a checkpoint number"
            )
        return record["name"], record
    if not choice.isdigit():
        raise ModelUploadError(f"checkpoint {choice!r} must be 'last', 'best' or a number")
    for key in sorted(keys):
        name = key.removeprefix(f"{model_dir}/").removesuffix(".index")
        match = _CHECKPOINT_NAME.match(name)
        if key.endswith(".index") and match and match.group(1) == choice:
            return name, {"name": name, "time_stamp": now, "avg_comp_pct": NUMBERED_COMPLETION}
    raise ModelUploadError(
        f"no checkpoint {choice} in {model_dir}/ (looked for {choice}_Step-*.ckpt.index)"
    )


def plan_upload(
    layout: RunLayout,
    keys: set[str],
    checkpoints: dict,
    choice: str,
    target_prefix: str,
    params_yaml: str,
    now: int,
) -> UploadPlan:
    """What to copy from the run (`keys`: every object key under its model prefix and its
    custom files) and what to write under `target_prefix`: the chosen checkpoint only, with
    `params_yaml` as its training_params.yaml; `now` stamps a checkpoint picked by number."""
    model_dir = layout.model_dir
    name, record = _pick(keys, model_dir, checkpoints, choice, now)
    number = _CHECKPOINT_NAME.match(name)
    if number is None:
        raise ModelUploadError(f"checkpoint name {name!r} is not '<n>_Step-<steps>.ckpt'")
    files = sorted(k for k in keys if k.startswith(f"{model_dir}/{name}."))
    if not any(k.endswith(".index") for k in files):
        raise ModelUploadError(f"checkpoint {name} has no files in {model_dir}/")
    reward = (
        layout.run_reward_function if layout.run_reward_function in keys else layout.reward_function
    )
    metrics = sorted(k for k in keys if k.startswith(f"{layout.metrics_prefix}/"))
    hyperparameters = f"{layout.ip_dir}/{HYPERPARAMETERS}"
    required = [
        *files,
        f"{model_dir}/model_{number.group(1)}.pb",
        f"{model_dir}/{MODEL_METADATA}",
        reward,
        hyperparameters,
    ]
    missing = [key for key in required if key not in keys] + (
        [] if metrics else [f"{layout.metrics_prefix}/ (the training metrics)"]
    )
    if missing:
        raise ModelUploadError(
            f"the run lacks {', '.join(missing)}: an importable model "
            "needs them (was the run started by trackday or DRfC?)"
        )
    target = RunLayout(model_prefix=target_prefix)
    copies = {f"{target.model_dir}/{key.rsplit('/', 1)[1]}": key for key in required[:-2]}
    copies[f"{target_prefix}/{MODEL_METADATA}"] = f"{model_dir}/{MODEL_METADATA}"
    copies[target.run_reward_function] = reward
    copies[f"{target.ip_dir}/{HYPERPARAMETERS}"] = hyperparameters
    copies |= {target_prefix + key.removeprefix(layout.model_prefix): key for key in metrics}
    only = {"last_checkpoint": record, "best_checkpoint": record}
    writes = {
        target.checkpoints_json: json.dumps(only).encode(),
        f"{target.model_dir}/.coach_checkpoint": name.encode(),
        f"{target_prefix}/{TRAINING_PARAMS}": params_yaml.encode(),
    }
    return UploadPlan(name, copies, writes)
