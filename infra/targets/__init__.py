"""One module per target, each with the same shape.

A target module defines a `pulumi.ComponentResource` subclass taking `TargetArgs`, which
declares the target's storage, identity, network, GPU nodes (where the target has them) and
trainer image as child components, and returns its outputs record (contract/outputs.py:
local, swarm or gcp) from `outputs()`. Every target exports at least `target`, `bucketUrl`
and `image`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pulumi

from contract.outputs import Outputs
from infra.config import StackConfig

if TYPE_CHECKING:  # only the local target and the runs load the Docker provider
    import pulumi_docker as docker

TRAINER_DOCKERFILE = "training/donkeycar/Dockerfile"
TRAINER_IMAGE = "trackday-donkeycar"


@dataclass(frozen=True)
class TargetArgs:
    """What every target component is built from."""

    config: StackConfig
    stack: str
    repo_root: Path


class Target(Protocol):
    """A target component: its outputs record (contract/outputs.py) and what a DeepRacer run
    declared by the program (infra/workloads/deepracer.py) deploys with."""

    # The Docker provider of the engine the runs' services go to; None: the program's default
    # provider, this machine's engine (right only on the local target).
    docker_provider: docker.Provider | None
    # The runs' network, where the target owns it (local with `deepracerRun`), else None.
    run_network: docker.Network | None

    def outputs(self) -> Outputs: ...

    def stack_outputs(self) -> dict[str, Any]:
        """`outputs().to_exports()`: what the stack exports."""
        ...


class TargetFactory(Protocol):
    def __call__(
        self, name: str, args: TargetArgs, opts: pulumi.ResourceOptions | None = None
    ) -> Target: ...


# donkeycar versions whose Python no TensorFlow image carries: 5.4.0 needs Python 3.12 and
# TensorFlow 2.19 (from pip, with its CUDA libraries when TENSORFLOW_CUDA is true).
BASE_IMAGE_BY_VERSION = {"5.4.0": "python:3.12-slim-bookworm"}


def trainer_build_args(config: StackConfig, gpu: bool) -> dict[str, str]:
    """Docker build arguments of training/donkeycar/Dockerfile for this stack.

    BASE_IMAGE is passed only when the stack names one or the version needs another, so
    the Dockerfile's default (TensorFlow's 2.15 GPU image, for 5.3.0) stays the single
    default; TENSORFLOW_CUDA=false builds the smaller CPU image when the machine has no GPU.
    """
    args = {
        "DONKEYCAR_VERSION": config.donkeycar.version,
        "TENSORFLOW_CUDA": "true" if gpu else "false",
    }
    base = config.donkeycar.base_image or BASE_IMAGE_BY_VERSION.get(config.donkeycar.version)
    if base:
        args["BASE_IMAGE"] = base
    return args


def child(parent: pulumi.Resource, **kwargs: Any) -> pulumi.ResourceOptions:
    """Options for a child resource: parented to `parent`, plus any extra options."""
    return pulumi.ResourceOptions(parent=parent, **kwargs)
