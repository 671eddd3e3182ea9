"""Run the Pulumi program for a stack under Pulumi's mocks, from a shipped file or from values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra import config, offline, program

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = config.list_stacks(ROOT)


def shipped_values(stack: str) -> dict[str, Any]:
    """The config of a shipped stack file, exactly as shipped (namespaced keys)."""
    return config.read_stack_file(config.stack_file(ROOT, stack))


def run_stack(stack: str, values: dict[str, Any]) -> offline.OfflineRun:
    """Build the program through its entry function under fresh mocks with these config values."""
    return offline.run_offline(
        lambda: program.build(config.load()), stack, offline.stack_config(values)
    )


def with_keys(stack: str, **changes: Any) -> dict[str, Any]:
    """A shipped stack's values with some `trackday:` sections changed (merged one level deep)."""
    values = shipped_values(stack)
    for key, value in changes.items():
        full = f"{config.NAMESPACE}:{key}"
        current = values.get(full)
        values[full] = (
            {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value
        )
    return values


def plain_secret_leaks(run: offline.OfflineRun) -> list[str]:
    """Where a secret output's value appears unprotected in some resource's inputs."""
    secrets = [str(o.value) for o in run.outputs.values() if o.secret]
    leaks = []
    for resource in run.resources:
        text = repr(resource.inputs)
        leaks += [f"{resource.type} {resource.name}" for s in secrets if s and s in text]
    return leaks
