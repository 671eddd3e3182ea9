"""build(config) -> outputs: the whole stack for the configured target."""

from __future__ import annotations

import importlib
from typing import Any

import pulumi

from contract.outputs import PROJECT_ROOT
from infra.config import TARGETS, ConfigError, StackConfig
from infra.targets import TargetArgs, TargetFactory
from infra.workloads import deepracer

REPO_ROOT = PROJECT_ROOT


# Target name -> its component class. Imported on use, so a stack loads only its own provider.
TARGET_CLASSES = {
    "local": "infra.targets.local:LocalTarget",
    "gcp": "infra.targets.gcp:GcpTarget",
    "aws": "infra.targets.aws:AwsTarget",
    "azure": "infra.targets.azure:AzureTarget",
}


def target_class(target: str) -> TargetFactory:
    if target not in TARGET_CLASSES:
        available = ", ".join(t for t in TARGETS if t in TARGET_CLASSES)
        raise ConfigError(
            "target", target, f"not available in this version; available: {available}"
        )
    module, cls = TARGET_CLASSES[target].split(":")
    return getattr(importlib.import_module(module), cls)


def build(config: StackConfig, stack: str | None = None) -> dict[str, Any]:
    """Declare the stack's resources and return its outputs (camelCase names)."""
    stack = stack or pulumi.get_stack()
    run = deepracer.requested(config, REPO_ROOT)  # checks the custom files before anything
    target = target_class(config.target)(
        f"trackday-{stack}", TargetArgs(config=config, stack=stack, repo_root=REPO_ROOT)
    )
    outputs = target.stack_outputs()
    if run is not None:
        outputs |= deepracer.deploy(f"trackday-{stack}-dr", run, target, stack)
    return outputs
