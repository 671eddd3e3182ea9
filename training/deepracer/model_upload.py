"""`upload-model`: which objects of a run make one importable model, and the ones to write.

The DeepRacer console imports a model from a prefix holding one checkpoint (its TensorFlow
files and frozen graph `model_<n>.pb`), `model_metadata.json`, the checkpoint records
(`deepracer_checkpoints.json`, `.coach_checkpoint`, TensorFlow's `checkpoint`) naming that
checkpoint as both best and last, the reward function and the training parameters, as
DRfC's dr-upload-model writes them. A pure plan: the caller copies and writes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from training.deepracer.layout import MODEL_METADATA, RunLayout

_CHECKPOINT_NAME = re.compile(r"^(\d+)_Step-(\d+)\.ckpt$")
TRAINING_PARAMS = "training_params.yaml"


class ModelUploadError(ValueError):
    """The run lacks what an importable model needs; the message says what and how to fix."""


@dataclass(frozen=True)
class UploadPlan:
    checkpoint: str
    copies: dict[str, str] = field(default_factory=dict)  # target key -> source key
    writes: dict[str, bytes] = field(default_factory=dict)  # target key -> content


def _pick(keys: set[str], model_dir: str, records: dict, choice: str) -> tuple[str, dict]:
    """The checkpoint name and its record: `last`, `best`, or a checkpoint number."""
    if choice in ("last", "best"):
        record = records.get(f"{choice}_checkpoint") or {}
        if not record.get("name"):
            raise ModelUploadError(
                f"{model_dir}/deepracer_checkpoints.json names no {choice} checkpoint yet; "
                "wait for the first evaluated iteration, or pass a checkpoint number")
        return record["name"], record
    if not choice.isdigit():
        raise ModelUploadError(f"checkpoint {choice!r} must be 'last', 'best' or a number")
    for key in sorted(keys):
        name = key.removeprefix(f"{model_dir}/").removesuffix(".index")
        match = _CHECKPOINT_NAME.match(name)
        if key.endswith(".index") and match and match.group(1) == choice:
            return name, {"name": name}
    raise ModelUploadError(f"no checkpoint {choice} in {model_dir}/ (looked for "
                           f"{choice}_Step-*.ckpt.index)")


def plan_upload(layout: RunLayout, keys: set[str], checkpoints: dict, choice: str,
                target_prefix: str) -> UploadPlan:
    """What to copy from the run (`keys`: every object key under its model prefix) and what
    to write under `target_prefix` so that it holds the chosen checkpoint only."""
    model_dir = layout.model_dir
    name, record = _pick(keys, model_dir, checkpoints, choice)
    number = _CHECKPOINT_NAME.match(name)
    if number is None:
        raise ModelUploadError(f"checkpoint name {name!r} is not '<n>_Step-<steps>.ckpt'")
    files = sorted(k for k in keys if k.startswith(f"{model_dir}/{name}."))
    if not any(k.endswith(".index") for k in files):
        raise ModelUploadError(f"checkpoint {name} has no files in {model_dir}/")
    sources = [*files, f"{model_dir}/model_{number.group(1)}.pb", f"{model_dir}/{MODEL_METADATA}",
               layout.run_reward_function]
    missing = [key for key in sources if key not in keys]
    if missing:
        raise ModelUploadError(f"the run lacks {', '.join(missing)}: an importable model "
                               "needs them (was the run started by trackday or DRfC?)")
    target = RunLayout(model_prefix=target_prefix)
    copies = {f"{target.model_dir}/{key.rsplit('/', 1)[1]}": key for key in sources[:-1]}
    copies[target.run_reward_function] = layout.run_reward_function
    optional = {layout.training_params: f"{target_prefix}/{TRAINING_PARAMS}",
                f"{layout.ip_dir}/hyperparameters.json": f"{target.ip_dir}/hyperparameters.json",
                layout.training_metrics(): target.training_metrics()}
    copies |= {dest: source for source, dest in optional.items() if source in keys}
    only = {"best_checkpoint": record, "last_checkpoint": record}
    writes = {
        target.checkpoints_json: json.dumps(only).encode(),
        f"{target.model_dir}/.coach_checkpoint": name.encode(),
        f"{target.model_dir}/checkpoint": (f'model_checkpoint_path: "{name}"\n'
                                           f'all_model_checkpoint_paths: "{name}"\n').encode(),
    }
    return UploadPlan(name, copies, writes)

