"""The `aws` target's Parameter Store parameters: where the nodes form the swarm without SSH
from the deployer (issue 11 item 2; infra/bootstrap/join_store.py and aws_store.py say what
each node does with them), and what each node's role may do with them.

Under `/trackday/<stack>/`, standard tier, always asked for (the account's default tier may be
advanced, which bills; no charge for standard: https://aws.amazon.com/systems-manager/
pricing/, "Parameter Store"), all created by the stack so that `pulumi destroy` deletes them:

- `swarm-join`, SecureString under the account's default key aws/ssm (a role needs no KMS
  grant for it): the manager puts `{token, manager}`, workers get it. Created with the
  placeholder `{}` (no token: workers wait), its value then ignored by Pulumi.
- `trackday-ready`, `trackday-trainer` (String, placeholder `{}`, ignored): the manager's
  "done" with host key and instance id, and the trainer digest it built; the deployer reads
  them (infra/targets/aws_ready.py).
- `trainer-request` (String, set by the program, changed in place): what the manager builds.

Grants, exactly: the manager's role PutParameter on the join, ready and trainer parameters and
GetParameter on the request; a worker's role GetParameter on the join parameter only
(https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-paramstore-access.html).
"""

from __future__ import annotations

import json
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.bootstrap.spec import AZURE_READY_SECRET, JoinStore, Role
from infra.bootstrap.trainer_build import BUILT_SECRET, REQUEST_PARAMETER
from infra.targets import child

JOIN = "swarm-join"
PLACEHOLDER = "{}"


def parameter_path(stack: str) -> str:
    return f"/trackday/{stack}"


def ssm_policy(role: Role, join_arn: str) -> list[dict[str, Any]]:
    """What a node's role may do in Parameter Store (`join_arn`: the join parameter's ARN)."""
    base = join_arn.rsplit("/", 1)[0]
    if role == "worker":
        return [{"Effect": "Allow", "Action": ["ssm:GetParameter"], "Resource": [join_arn]}]
    written = [join_arn, f"{base}/{AZURE_READY_SECRET}", f"{base}/{BUILT_SECRET}"]
    return [
        {"Effect": "Allow", "Action": ["ssm:PutParameter"], "Resource": written},
        {
            "Effect": "Allow",
            "Action": ["ssm:GetParameter"],
            "Resource": [f"{base}/{REQUEST_PARAMETER}"],
        },
    ]


class SwarmParameters(pulumi.ComponentResource):
    """The stack's swarm parameters; `store` is the nodes' join store (the join ARN)."""

    def __init__(
        self,
        name: str,
        stack: str,
        trainer_request: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("trackday:aws:SwarmParameters", name, None, opts)
        path = parameter_path(stack)
        written = child(self, ignore_changes=["value"])
        self.join = aws.ssm.Parameter(
            f"{name}-join",
            name=f"{path}/{JOIN}",
            type="SecureString",
            tier="Standard",
            value=PLACEHOLDER,
            opts=written,
        )
        self.ready = aws.ssm.Parameter(
            f"{name}-ready",
            name=f"{path}/{AZURE_READY_SECRET}",
            type="String",
            tier="Standard",
            value=PLACEHOLDER,
            opts=written,
        )
        self.built = aws.ssm.Parameter(
            f"{name}-built",
            name=f"{path}/{BUILT_SECRET}",
            type="String",
            tier="Standard",
            value=PLACEHOLDER,
            opts=written,
        )
        self.request = aws.ssm.Parameter(
            f"{name}-request",
            name=f"{path}/{REQUEST_PARAMETER}",
            type="String",
            tier="Standard",
            value=trainer_request,
            opts=child(self),
        )
        self.store: pulumi.Output[JoinStore] = self.join.arn.apply(
            lambda arn: JoinStore("aws", arn)
        )
        self.register_outputs({"join": self.join.name})

    def policy(self, role: Role) -> pulumi.Output[str]:
        return self.join.arn.apply(
            lambda arn: json.dumps({"Version": "2012-10-17", "Statement": ssm_policy(role, arn)})
        )
