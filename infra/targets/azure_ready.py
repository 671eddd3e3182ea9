"""Waits, with the deployer's own Azure sign-in, until the manager says its bootstrap is done.

The manager's bootstrap writes the vault's ready secret last (infra/bootstrap/join_store.py):
`{"bootstrap": "done", "hostKey", "vmId"}`. `pulumi up` reads it with Key Vault's REST API
(`GET {vault}/secrets/{name}?api-version=7.4`: 404 `SecretNotFound` until written;
https://learn.microsoft.com/rest/api/keyvault/secrets/get-secret/get-secret) and a token from
the deployer's credential (azure-identity's DefaultAzureCredential: `az login`, or a CI
runner's federated identity), so a deploy needs no route to the VM. `vmId` must be the
manager's current VM: a replaced manager's predecessor wrote the old one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, ResourceProvider, UpdateResult

from infra.bootstrap.join_store import VAULT_API, VAULT_RESOURCE

WAIT_MINUTES = 45  # the manager's whole bootstrap (READY_TIMEOUT_MINUTES) plus its boot
POLL_SECONDS = 15


def wait_for_ready(
    get: Callable[[str], Any],
    props: dict[str, Any],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Polls until the manager `instanceId` said it is done; its SSH host key. A refusal or
    the deadline is a clear error."""
    url = f"{props['secret']}?api-version={VAULT_API}"
    deadline = clock() + props["minutes"] * 60
    while True:
        response = get(url)
        if response.status_code == 200:
            ready = json.loads(response.json()["value"])
            if ready.get("vmId") == props["instanceId"] and ready.get("bootstrap") == "done":
                return str(ready["hostKey"])
        elif response.status_code != 404:
            raise RuntimeError(
                f"reading {props['secret']} failed (HTTP {response.status_code}):"
                f" {response.text[:300]}; the deployer needs Key Vault Secrets User on the"
                " stack's vault (the stack grants it to whoever runs `pulumi up`)"
            )
        if clock() >= deadline:
            raise TimeoutError(
                f"the manager (VM {props['instanceId']}) did not say it was done in"
                f" {props['secret']} within {props['minutes']} min: see"
                " `journalctl -u trackday-bootstrap` on it (serial console), then run"
                " `pulumi up` again"
            )
        sleep(POLL_SECONDS)


def _azure_get() -> Callable[[str], Any]:
    import requests
    from azure.identity import DefaultAzureCredential

    credential = DefaultAzureCredential()

    def get(url: str) -> Any:
        token = credential.get_token(f"{VAULT_RESOURCE}/.default").token
        return requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    return get


class ReadyProvider(ResourceProvider):
    """Creating (or replacing the manager, which changes `instanceId`) waits for its done."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        host_key = wait_for_ready(_azure_get(), props)
        return CreateResult(id_=props["instanceId"], outs={**props, "host_key": host_key})

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs={**news, "host_key": wait_for_ready(_azure_get(), news)})


class ManagerReady(pulumi.dynamic.Resource):
    """Exists once the manager VM `instanceId` wrote "done" to the vault's ready `secret`;
    `host_key` is the SSH host key it published there."""

    host_key: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        props: dict[str, pulumi.Input[Any]],
        opts: pulumi.ResourceOptions | None = None,
    ):
        full = {"minutes": WAIT_MINUTES, "host_key": None, **props}
        super().__init__(ReadyProvider(), name, full, opts)
