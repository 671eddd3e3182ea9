"""The stacks a dashboard shows, and the one way it reaches their buckets.

Every `Pulumi.<name>.yaml` beside Pulumi.yaml is a stack of the project. Its outputs (from
`pulumi stack output`, or an outputs file as the other commands take with --outputs) say where
its bucket is and how this machine reaches it (trackday.stack.storage_env); a stack without
outputs is shown as not deployed. The local `models/` folder, where `trackday donkey train
--local` writes, is one more source of DonkeyCar runs.

training.storage takes endpoints and keys from the process environment, and the server answers
on several threads, so every bucket access runs inside `reading()`: one lock, the stack's
variables set for the block, and storage failures turned into BucketError for the error page.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from contract.outputs import (
    BucketAccess,
    DonkeyTraining,
    SwarmOutputs,
    SwarmSite,
    SwarmTraining,
    VertexTraining,
)
from trackday.dashboard.costs import Price, stack_price
from trackday.errors import TrackdayError
from trackday.runs import runs_url
from trackday.stack import StackError, read_outputs, storage_env
from training import storage

MODELS = "models"  # the name of the local folder's pseudo-stack
_LOCK = threading.RLock()


class BucketError(TrackdayError):
    """A stack's bucket cannot be read; carries the stack for the error page."""

    def __init__(self, stack: Stack, detail: str) -> None:
        super().__init__(f"stack {stack.name}: {detail}")
        self.stack = stack
        self.detail = detail


@dataclass(frozen=True)
class Stack:
    name: str
    target: str | None
    bucket_url: str | None  # as this machine reaches it; a folder for the local models
    outputs: dict[str, Any] | None  # None: not deployed, or its outputs unreadable
    problem: str | None = None  # why there are no outputs
    price: Price | None = None  # per hour while its machines run (costs.py)

    @property
    def deployed(self) -> bool:
        return self.outputs is not None

    @property
    def is_folder(self) -> bool:
        return self.target == "folder"

    @property
    def donkey_runs_url(self) -> str | None:
        """Where the trainer wrote this source's runs (the folder itself for models/)."""
        if self.bucket_url is None:
            return None
        return self.bucket_url if self.is_folder else runs_url(self.bucket_url)

    def env(self) -> dict[str, str]:
        if self.outputs is None:
            return {}
        try:
            return {k: str(v) for k, v in storage_env(self.outputs).items()}
        except KeyError as missing:
            raise BucketError(
                self, f"output {missing} is missing: run `pulumi up --stack {self.name}`"
            ) from None

    def _training(self) -> dict[str, Any]:
        """The training settings the stack exported, {} when none."""
        value = SwarmOutputs.value(self.outputs or {}, "training")
        return value if isinstance(value, dict) else {}

    @property
    def node_count(self) -> Any:
        return SwarmSite.value(self.outputs or {}, "node_count", "—")

    @property
    def gpus_per_job(self) -> Any:
        """A Swarm job's GPUs, or a Vertex AI job's accelerators."""
        training = self._training()
        return SwarmTraining.value(
            training, "gpus", VertexTraining.value(training, "accelerator_count", "—")
        )

    @property
    def max_run_hours(self) -> Any:
        return DonkeyTraining.value(self._training(), "max_run_hours")


def stack_names(project: Path) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in project.glob("Pulumi.*.yaml"))


def _declared(project: Path, name: str) -> tuple[str | None, str | None]:
    """Target and bucket name as the stack file declares them (before any deployment)."""
    try:
        config = yaml.safe_load((project / f"Pulumi.{name}.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None, None
    values = config.get("config") or {}
    bucket = (values.get("trackday:storage") or {}).get("bucket")
    return values.get("trackday:target"), bucket


def load_stack(project: Path, name: str, outputs_file: Path | None = None) -> Stack:
    target, bucket = _declared(project, name)
    cost = stack_price(project, name) if target else None
    try:
        outputs = read_outputs(name, outputs_file, cwd=project)
    except StackError as error:
        return Stack(name, target, None, None, str(error), cost)
    if not outputs:
        return Stack(name, target, None, None, f"not deployed: `pulumi up --stack {name}`", cost)
    url = BucketAccess.value(outputs, "bucket_url")
    return Stack(
        name,
        BucketAccess.value(outputs, "target", target),
        url if isinstance(url, str) else None,
        outputs,
        None if isinstance(url, str) else f"no {BucketAccess.key('bucket_url')} output ({bucket})",
        cost,
    )


def discover(
    project: Path, names: list[str], outputs_files: dict[str, Path], models: Path | None
) -> list[Stack]:
    """The stacks to show: those named (all of the project's when none), then models/."""
    chosen = names or sorted(set(stack_names(project)) | set(outputs_files))
    stacks = [load_stack(project, name, outputs_files.get(name)) for name in chosen]
    if models is not None and models.is_dir():
        stacks.append(Stack(MODELS, "folder", str(models.resolve()), {}))
    return stacks


@contextmanager
def reading(stack: Stack) -> Iterator[str]:
    """The stack's bucket URL, with its endpoint and keys in force for the block."""
    if stack.bucket_url is None:
        raise BucketError(stack, stack.problem or "no bucket")
    with _LOCK, storage.environment(stack.env()):
        try:
            yield stack.bucket_url
        except (storage.StorageError, OSError) as error:
            raise BucketError(stack, str(error)) from None
