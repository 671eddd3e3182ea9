"""The deployer's wait for what the manager writes to the cloud's store ("done" with its host
key, "trainer built"), shared by the clouds whose nodes form the swarm through a store they
write JSON to (azure's Key Vault: infra/targets/azure_ready.py; aws's Parameter Store:
infra/targets/aws_ready.py). A deploy needs no route to the VM, only the deployer's sign-in.

What counts is written by the CURRENT manager (`vmId` = the resource's `instanceId`): a replaced
manager's predecessor wrote the old one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, ResourceProvider, UpdateResult

WAIT_MINUTES = 45  # the manager's whole bootstrap (READY_TIMEOUT_MINUTES) plus its boot
POLL_SECONDS = 15


def wait_until_written(
    read: Callable[[], dict[str, Any] | None],
    props: dict[str, Any],
    where: str,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Polls `read` (None: nothing yet; it raises a clear error for a refusal) until the
    manager `instanceId` wrote `expect` to `where`; what it wrote."""
    deadline = clock() + props["minutes"] * 60
    wanted = {**props["expect"], "vmId": props["instanceId"]}
    while True:
        written = read()
        if written is not None and all(written.get(k) == v for k, v in wanted.items()):
            return written
        if clock() >= deadline:
            raise TimeoutError(
                f"the manager ({props['instanceId']}) did not write {props['expect']} to"
                f" {where} within {props['minutes']} min: see"
                " `journalctl -u trackday-bootstrap -u trackday-trainer-build` on it (serial"
                " console), then run `pulumi up` again"
            )
        sleep(POLL_SECONDS)


class StoreWaitProvider(ResourceProvider):
    """Creating (or replacing the manager, which changes `instanceId`, or asking for another
    `expect`) waits for it; `host_key` is the host key the manager wrote with its "done".
    `key` names the prop that says where (the secret, the parameter)."""

    key = "secret"

    def wait(self, props: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def create(self, props: dict[str, Any]) -> CreateResult:
        written = self.wait(props)
        outs = {**props, "host_key": written.get("hostKey")}
        return CreateResult(id_=f"{props['instanceId']}/{props[self.key]}", outs=outs)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs={**news, "host_key": self.wait(news).get("hostKey")})


class StoreWait(pulumi.dynamic.Resource):
    """Exists once the manager `instanceId` wrote `expect` to the store (`provider_class` says
    which); `host_key` is the SSH host key it published with its "done"."""

    provider_class: type[StoreWaitProvider]
    host_key: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        props: dict[str, pulumi.Input[Any]],
        opts: pulumi.ResourceOptions | None = None,
    ):
        full = {"minutes": WAIT_MINUTES, "host_key": None, **props}
        super().__init__(self.provider_class(), name, full, opts)
