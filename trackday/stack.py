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

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from infra.program import REPO_ROOT


class StackError(Exception):
    """The stack's outputs cannot be read or lack what a command needs; the message says which."""


class _Outputs(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


_OutputsT = TypeVar("_OutputsT", bound=_Outputs)


class TrainingSettings(_Outputs):
    machine_type: str
    accelerator_type: str
    accelerator_count: int
    spot: bool
    boot_disk_gb: int
    max_run_hours: float | None
    donkeycar_version: str
    model_type: str | None = None  # None: the car config's DEFAULT_MODEL_TYPE
    overrides: dict[str, Any]


class GcpOutputs(_Outputs):
    """What the gcp target exports (infra/targets/gcp.py) and a Vertex AI job needs."""

    target: str
    project: str
    region: str
    bucket_url: str
    image: str
    trainer_service_account: str
    training: TrainingSettings


class SwarmTraining(_Outputs):
    gpus: int
    max_run_hours: float | None
    donkeycar_version: str
    model_type: str | None = None  # None: the car config's DEFAULT_MODEL_TYPE
    overrides: dict[str, Any]


class SwarmOutputs(_Outputs):
    """What a swarm target exports (infra/targets/swarm_outputs.py) and a Swarm job needs."""

    target: str
    bucket_url: str
    node_bucket_url: str
    s3_endpoint: str | None = None
    manager_address: str
    manager_host_key: str | None = None
    ssh_user: str
    ssh_private_key: str
    # Not exported by the stacks: an outputs file may set it for a manager behind a forwarded port.
    ssh_port: int = 22
    image: str
    training: SwarmTraining
    region: str | None = None
    # The S3 gateway's keys (azure): the nodes there have no identity that S3 knows.
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None


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


def gcp_outputs(stack: str, outputs: dict[str, Any]) -> GcpOutputs:
    """The outputs of a gcp stack, checked; names the missing or wrong output."""
    if outputs.get("target") != "gcp":
        raise StackError(
            f"stack {stack} is not a gcp stack (target {outputs.get('target')!r}); "
            "Vertex AI jobs need `trackday:target: gcp`"
        )
    return _validated(GcpOutputs, stack, outputs)


SWARM_TARGETS = ("aws", "azure")


def swarm_outputs(stack: str, outputs: dict[str, Any]) -> SwarmOutputs:
    """The outputs of an aws or azure stack (a GPU swarm), checked; names what is wrong."""
    if outputs.get("target") not in SWARM_TARGETS:
        raise StackError(
            f"stack {stack} is not a swarm stack (target {outputs.get('target')!r}); "
            "Swarm jobs need `trackday:target: aws` or `azure`"
        )
    return _validated(SwarmOutputs, stack, outputs)


def _validated(model: type[_OutputsT], stack: str, outputs: dict[str, Any]) -> _OutputsT:
    try:
        return model.model_validate(outputs)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise StackError(
            f"stack {stack}: output {where}: {err['msg']} (run `pulumi up` for this stack)"
        ) from None


def storage_env(outputs: dict[str, Any]) -> dict[str, str]:
    """Environment the storage layer needs to reach the stack's bucket from this machine.

    The local target's S3 server takes the generated keys; cloud buckets use this machine's
    own cloud login (gcloud application-default credentials, AWS profile, Azure login), with
    the storage account named on azure.
    """
    if outputs.get("target") == "azure":
        return {"AZURE_STORAGE_ACCOUNT_NAME": outputs["storageAccount"]}
    if outputs.get("target") == "local":
        return {
            "AWS_ENDPOINT_URL": outputs["s3Endpoint"],
            "AWS_ACCESS_KEY_ID": outputs["s3AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": outputs["s3SecretAccessKey"],
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    return {}


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
