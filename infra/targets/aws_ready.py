"""Waits, with the deployer's own AWS credentials, until the manager wrote a parameter.

The manager's bootstrap writes the String parameter `trackday-ready` next to the join
parameter last (infra/bootstrap/join_store.py): `{"bootstrap": "done", "hostKey", "vmId"}`
(vmId: the EC2 instance id), its build timer `{"digest", "vmId"}` to `trackday-trainer`
(infra/bootstrap/trainer_build.py). `pulumi up` reads it with boto3 (`ssm.get_parameter`:
ParameterNotFound, or the stack's placeholder `{}`, until written), with whatever credentials
the deployer signed in with (a profile, or a CI runner's OIDC role); the runner needs
ssm:GetParameter on both (docs/gitops.md). infra/targets/store_wait.py waits.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from infra.targets.store_wait import StoreWait, StoreWaitProvider, wait_until_written


def wait_for_parameter(
    get: Callable[[str], str | None],
    props: dict[str, Any],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Polls `get` (a parameter's value, None while it does not exist) until the manager
    `instanceId` wrote `expect` into `parameter`; what it wrote."""

    def read() -> dict[str, Any] | None:
        value = get(props["parameter"])
        return None if value is None else json.loads(value)

    return wait_until_written(read, props, props["parameter"], clock, sleep)


def boto3_get(region: str, **client_options: Any) -> Callable[[str], str | None]:
    """A parameter's value with the deployer's credentials (`client_options`: boto3's, to
    point elsewhere); a refusal names the permission."""
    import boto3
    from botocore.exceptions import ClientError

    client = boto3.client("ssm", region_name=region, **client_options)

    def get(name: str) -> str | None:
        try:
            return client.get_parameter(Name=name)["Parameter"]["Value"]
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code == "ParameterNotFound":
                return None
            if code in ("AccessDeniedException", "AccessDenied"):
                raise RuntimeError(
                    f"reading SSM parameter {name} was refused ({error}): the deployer"
                    f" needs ssm:GetParameter on arn:aws:ssm:{region}:<account>:parameter{name}"
                    " (docs/gitops.md)"
                ) from error
            raise

    return get


class ParameterWaitProvider(StoreWaitProvider):
    key = "parameter"

    def wait(self, props: dict[str, Any]) -> dict[str, Any]:
        return wait_for_parameter(boto3_get(props["region"]), props)


class ParameterWait(StoreWait):
    """Exists once the manager instance `instanceId` wrote `expect` to SSM `parameter` (a name)
    in `region` ("done", "trainer built"); `host_key` is the SSH host key of its "done"."""

    provider_class = ParameterWaitProvider
