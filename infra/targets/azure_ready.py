"""Waits, with the deployer's own Azure sign-in, until the manager says its bootstrap is done.

The manager's bootstrap writes the vault's ready secret last (infra/bootstrap/join_store.py):
`{"bootstrap": "done", "hostKey", "vmId"}`, its build timer `{"digest", "vmId"}` to the
trainer secret (infra/bootstrap/trainer_build.py). `pulumi up` reads it with Key Vault's REST API
(`GET {vault}/secrets/{name}?api-version=7.4`: 404 `SecretNotFound` until written;
https://learn.microsoft.com/rest/api/keyvault/secrets/get-secret/get-secret) and a token from
the deployer's credential (azure-identity's DefaultAzureCredential: `az login`, or a CI
runner's federated identity); infra/targets/store_wait.py waits.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from infra.bootstrap.join_store import VAULT_API, VAULT_RESOURCE
from infra.targets.store_wait import StoreWait, StoreWaitProvider, wait_until_written


def wait_for_secret(
    get: Callable[[str], Any],
    props: dict[str, Any],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Polls until the manager `instanceId` wrote `expect` into the secret; what it wrote.
    A refusal or the deadline is a clear error."""
    url = f"{props['secret']}?api-version={VAULT_API}"

    def read() -> dict[str, Any] | None:
        response = get(url)
        if response.status_code == 200:
            return json.loads(response.json()["value"])
        if response.status_code == 404:
            return None
        raise RuntimeError(
            f"reading {props['secret']} failed (HTTP {response.status_code}):"
            f" {response.text[:300]}; the deployer needs Key Vault Secrets User on the"
            " stack's vault (the stack grants it to whoever runs `pulumi up`)"
        )

    return wait_until_written(read, props, props["secret"], clock, sleep)


def _azure_get() -> Callable[[str], Any]:
    import requests
    from azure.identity import DefaultAzureCredential

    credential = DefaultAzureCredential()

    def get(url: str) -> Any:
        token = credential.get_token(f"{VAULT_RESOURCE}/.default").token
        return requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=60)

    return get


class VaultWaitProvider(StoreWaitProvider):
    def wait(self, props: dict[str, Any]) -> dict[str, Any]:
        return wait_for_secret(_azure_get(), props)


class VaultWait(StoreWait):
    """Exists once the manager VM `instanceId` wrote `expect` to the vault's `secret` ("done",
    "trainer built"); `host_key` is the SSH host key it published with its "done"."""

    provider_class = VaultWaitProvider
