"""Waits, with the deployer's own Azure sign-in, until the manager says its bootstrap is done.

The manager's bootstrap writes the vault's ready secret last (infra/bootstrap/join_store.py):
`{"bootstrap": "done", "hostKey", "vmId"}`, its build timer `{"digest", "vmId"}` to the
trainer secret (infra/bootstrap/trainer_build.py). `pulumi up` reads it with Key Vault's REST API
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


def wait_for_secret(
    get: Callable[[str], Any],
    props: dict[str, Any],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Polls until the manager `instanceId` wrote `expect` into the secret; what it wrote.
    A refusal or the deadline is a clear error."""
    url = f"{props['secret']}?api-version={VAULT_API}"
    deadline = clock() + props["minutes"] * 60
    wanted = {**props["expect"], "vmId": props["instanceId"]}
    while True:
        response = get(url)
        if response.status_code == 200:
            written = json.loads(response.json()["value"])
            if all(written.get(key) == value for key, value in wanted.items()):
                return written
        elif response.status_code != 404:
            raise RuntimeError(
                f"reading {props['secret']} failed (HTTP {response.status_code}):"
                f" {response.text[:300]}; the deployer needs Key Vault Secrets User on the"
                " stack's vault (the stack grants it to whoever runs `pulumi up`)"
            )
        if clock() >= deadline:
            raise TimeoutError(
                f"the manager (VM {props['instanceId']}) did not write {props['expect']} to"
                f" {props['secret']} within {props['minutes']} min: see"
                " `journalctl -u trackday-bootstrap -u trackday-trainer-build` on it (serial"
                " console), then run `pulumi up` again"
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


class VaultWaitProvider(ResourceProvider):
    """Creating (or replacing the manager, which changes `instanceId`, or asking for another
    `expect`) waits for it."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        written = wait_for_secret(_azure_get(), props)
        outs = {**props, "host_key": written.get("hostKey")}
        return CreateResult(id_=f"{props['instanceId']}/{props['secret']}", outs=outs)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        written = wait_for_secret(_azure_get(), news)
        return UpdateResult(outs={**news, "host_key": written.get("hostKey")})


class VaultWait(pulumi.dynamic.Resource):
    """Exists once the manager VM `instanceId` wrote `expect` to the vault's `secret` ("done",
    "trainer built"); `host_key` is the SSH host key it published with its "done"."""

    host_key: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        props: dict[str, pulumi.Input[Any]],
        opts: pulumi.ResourceOptions | None = None,
    ):
        full = {"minutes": WAIT_MINUTES, "host_key": None, **props}
        super().__init__(VaultWaitProvider(), name, full, opts)
