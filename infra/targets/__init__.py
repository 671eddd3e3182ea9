"""One module per target, each with the same shape.

A target module defines a `pulumi.ComponentResource` subclass taking `TargetArgs`, which
declares the target's storage, identity, network, GPU nodes (where the target has them) and
trainer image as child components, and returns the stack outputs from `stack_outputs()`.
Every target exports at least `target`, `bucketUrl` and `image`; what a target adds (an S3
endpoint, a service account) is named in its module's docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pulumi

from infra.config import StackConfig

TRAINER_DOCKERFILE = "training/donkeycar/Dockerfile"
TRAINER_IMAGE = "trackday-donkeycar"


@dataclass(frozen=True)
class TargetArgs:
    """What every target component is built from."""

    config: StackConfig
    stack: str
    repo_root: Path


class Target(Protocol):
    def stack_outputs(self) -> dict[str, Any]: ...


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
