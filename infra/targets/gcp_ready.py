"""Waits, with the deployer's own Google credentials, until a VM has published a guest attribute.

The manager's bootstrap sets `trackday/bootstrap = done` last (infra/bootstrap/join_store.py);
`pulumi up` waits for it through the Compute API (`instances.getGuestAttributes` with
`variableKey`: 404 until the guest sets it; https://cloud.google.com/compute/docs/reference/
rest/v1/instances/getGuestAttributes), so a deploy needs no route to the VM, only the
deployer's cloud sign-in (Application Default Credentials: gcloud, or a CI runner's OIDC).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, ResourceProvider, UpdateResult

COMPUTE_API = "https://compute.googleapis.com/compute/v1"
WAIT_MINUTES = 45  # the manager's whole bootstrap (READY_TIMEOUT_MINUTES) plus its boot
POLL_SECONDS = 15


def attribute_url(props: dict[str, Any]) -> str:
    return (
        f"{props['api']}/projects/{props['project']}/zones/{props['zone']}/instances/"
        f"{props['instance']}/getGuestAttributes?variableKey={props['key']}"
    )


def wait_for_attribute(
    get: Callable[[str], Any],
    props: dict[str, Any],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Polls until the attribute holds `value`; a refusal or the deadline is a clear error."""
    url = attribute_url(props)
    deadline = clock() + props["minutes"] * 60
    while True:
        response = get(url)
        if response.status_code == 200 and response.json().get("variableValue") == props["value"]:
            return
        if response.status_code not in (200, 404):
            raise RuntimeError(
                f"reading guest attribute {props['key']} of {props['instance']} failed"
                f" (HTTP {response.status_code}): {response.text[:300]}; the deployer needs"
                " compute.instances.getGuestAttributes (roles/compute.viewer) in the project"
            )
        if clock() >= deadline:
            raise TimeoutError(
                f"{props['instance']} did not report {props['key']}={props['value']} within"
                f" {props['minutes']} min: see its serial console or"
                " `journalctl -u trackday-bootstrap` on it, then run `pulumi up` again"
            )
        sleep(POLL_SECONDS)


def _google_get() -> Callable[[str], Any]:
    import google.auth
    from google.auth.transport.requests import AuthorizedSession

    credentials, _project = google.auth.default(
        scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    session = AuthorizedSession(credentials)
    return lambda url: session.get(url, timeout=60)


class GuestAttributeProvider(ResourceProvider):
    """Creating (or replacing the VM, which changes `instanceId`) waits for the attribute."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        wait_for_attribute(_google_get(), props)
        return CreateResult(id_=f"{props['instance']}/{props['key']}", outs=props)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        wait_for_attribute(_google_get(), news)
        return UpdateResult(outs=news)


class GuestAttributeWait(pulumi.dynamic.Resource):
    """Exists once the VM `instance` published `key` = `value` in its guest attributes."""

    def __init__(
        self,
        name: str,
        props: dict[str, pulumi.Input[Any]],
        opts: pulumi.ResourceOptions | None = None,
    ):
        full = {"api": COMPUTE_API, "minutes": WAIT_MINUTES, **props}
        super().__init__(GuestAttributeProvider(), name, full, opts)
