"""A deployed stack's outputs: from `pulumi stack output`, or from a file (CI, GitOps runners).

The commands that work on a deployed stack (`donkey submit`, `donkey fetch`) read what
`pulumi up` exported, never the stack file: the outputs are what actually exists.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, TypeVar

from contract.outputs import PROJECT_ROOT as REPO_ROOT
from contract.outputs import (
    BucketAccess,
    GcpOutputs,
    Outputs,
    OutputsError,
    SwarmOutputs,
)
from contract.outputs import storage_env as _storage_env
from trackday.errors import TrackdayError

__all__ = [
    "GcpOutputs",
    "StackError",
    "SwarmOutputs",
    "bucket_access",
    "gcp_outputs",
    "read_outputs",
    "storage_env",
    "swarm_outputs",
    "target_of",
]


class StackError(TrackdayError):
    """The stack's outputs cannot be read or lack what a command needs; the message says which."""


_OutputsT = TypeVar("_OutputsT", bound=Outputs)


def read_outputs(
    stack: str, outputs_file: Path | None = None, cwd: Path = REPO_ROOT
) -> dict[str, Any]:
    """The stack's outputs, secrets included (they stay in this process).

    From `outputs_file` (the JSON `pulumi stack output --json --show-secrets` prints) when
    given, else from the Pulumi CLI for `stack` in the project folder `cwd`.
    """
    if outputs_file is not None:
        try:
            data = json.loads(outputs_file.read_text())
        except OSError as exc:
            raise StackError(f"--outputs {outputs_file}: {exc.strerror}") from None
        except ValueError as exc:
            raise StackError(f"--outputs {outputs_file}: not JSON ({exc})") from None
    else:
        data = _pulumi_outputs(stack, cwd)
    if not isinstance(data, dict):
        raise StackError(
            f"outputs of stack {stack}: expected a JSON object, got {type(data).__name__}"
        )
    return data


def target_of(outputs: dict[str, Any]) -> Any:
    """The stack's target as exported (None when the outputs lack it)."""
    return BucketAccess.value(outputs, "target")


def bucket_access(stack: str, outputs: dict[str, Any]) -> BucketAccess:
    """The bucket part every target exports, checked; names the missing or wrong output."""
    return _validated(BucketAccess, stack, outputs)


def gcp_outputs(stack: str, outputs: dict[str, Any]) -> GcpOutputs:
    """The outputs of a gcp stack, checked; names the missing or wrong output."""
    if target_of(outputs) != "gcp":
        raise StackError(
            f"stack {stack} is not a gcp stack (target {target_of(outputs)!r}); "
            "Vertex AI jobs need `trackday:target: gcp`"
        )
    return _validated(GcpOutputs, stack, outputs)


SWARM_TARGETS = ("aws", "azure")


def swarm_outputs(stack: str, outputs: dict[str, Any]) -> SwarmOutputs:
    """The outputs of an aws or azure stack (a GPU swarm), checked; names what is wrong."""
    if target_of(outputs) not in SWARM_TARGETS:
        raise StackError(
            f"stack {stack} is not a swarm stack (target {target_of(outputs)!r}); "
            "Swarm jobs need `trackday:target: aws` or `azure`"
        )
    return _validated(SwarmOutputs, stack, outputs)


def _validated(model: type[_OutputsT], stack: str, outputs: dict[str, Any]) -> _OutputsT:
    try:
        return model.parse(outputs)
    except OutputsError as exc:
        raise StackError(f"stack {stack}: {exc} (run `pulumi up` for this stack)") from None


def storage_env(outputs: dict[str, Any]) -> dict[str, str]:
    """Environment the storage layer needs to reach the stack's bucket from this machine
    (contract/outputs.py says which); KeyError names an output it needs and lacks."""
    # Only the keys it reads, as exported: a folder source has no outputs at all.
    access = BucketAccess.build(
        **{name: BucketAccess.value(outputs, name) for name in BucketAccess.model_fields}
    )
    try:
        if access.target == "azure":
            access.require("storage_account")
        return _storage_env(access)
    except OutputsError as missing:
        raise KeyError(missing.key) from None


def _pulumi_outputs(stack: str, cwd: Path) -> Any:
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise StackError(
            "the pulumi CLI is not installed here: pass --outputs FILE with the JSON of "
            f"`pulumi stack output --json --show-secrets --stack {stack}`"
        )
    done = subprocess.run(
        [pulumi, "stack", "output", "--json", "--show-secrets", "--stack", stack],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise StackError(f"pulumi stack output --stack {stack} failed: {detail}")
    try:
        return json.loads(done.stdout)
    except ValueError as exc:
        raise StackError(f"pulumi stack output --stack {stack}: not JSON ({exc})") from None
