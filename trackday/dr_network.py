"""The DeepRacer runs' network `sagemaker-local`, made and removed the way its users need it.

Two consumers decide its shape:
- rl_coach in the simulator image starts SageMaker local mode, whose compose file declares
  `sagemaker-local` as the project's own network; Docker Compose v2 refuses an existing
  network that lacks the labels it would have put on it ("network sagemaker-local was found
  but has incorrect label com.docker.compose.network"). DRfC makes it with
  `com.docker.compose.network` and `com.docker.compose.project` both `sagemaker-local`, and
  recreates one that lacks them (deepracer-for-cloud bin/activate.sh,
  `_create_sagemaker_network`, 2026-05).
- Standalone containers (the local S3 server) attach to the attachable overlay; the engine
  creates its local copy of a swarm network lazily and may answer "not found" to an attach
  that follows the creation or a removal closely (moby/moby#39391, docker/compose#12567).
  So attaching waits on the condition (the attach succeeds) up to a deadline, and removing
  waits until the network is gone, so that the next start never sees a network on its way out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import docker
import docker.errors

from contract.swarm import WORKLOAD_LABEL
from infra.workloads.run_target import LOCAL_S3_ALIAS
from trackday.errors import RunError
from training.deepracer.services import NETWORK, NETWORK_LABELS, WORKLOAD

NETWORK_TIMEOUT_S = 60.0
POLL_S = 0.25
SWARM_TASK_LABEL = "com.docker.swarm.task.id"  # on every container Swarm runs for a service
T = TypeVar("T")


def find_network(client: docker.DockerClient) -> dict | None:
    """`sagemaker-local` by its exact name (the Engine's name filter matches substrings)."""
    found = [n for n in client.api.networks(names=[NETWORK]) if n["Name"] == NETWORK]
    return found[0] if found else None


def has_compose_labels(network: dict) -> bool:
    labels = network.get("Labels") or {}
    return all(labels.get(key) == value for key, value in NETWORK_LABELS.items())


def ensure_network(client: docker.DockerClient, timeout_s: float = NETWORK_TIMEOUT_S) -> str:
    """The attachable overlay the trainer's SageMaker container and the workers share, with
    Docker Compose's labels; returns its ID. One that trackday made without the labels (an
    older trackday) is recreated while nothing uses it; any other is named with the fix."""
    network = find_network(client)
    if network is not None and not has_compose_labels(network):
        if (network.get("Labels") or {}).get(WORKLOAD_LABEL) != WORKLOAD:
            raise RunError(
                f"the network {NETWORK} exists without Docker Compose's labels, so the "
                "trainer's SageMaker container would not start: if a stack declares it, run "
                f"`pulumi up` with this trackday; otherwise `docker network rm {NETWORK}` and "
                "start again"
            )
        if client.api.services(filters={"label": f"{WORKLOAD_LABEL}={WORKLOAD}"}):
            raise RunError(
                f"the network {NETWORK} lacks Docker Compose's labels and runs still use it: "
                "stop them (`trackday dr stop-training`), then start again"
            )
        remove_network(client, network["Id"], timeout_s)
        network = None
    if network is None:
        try:
            client.api.create_network(
                NETWORK,
                driver="overlay",
                attachable=True,
                scope="swarm",
                labels={WORKLOAD_LABEL: WORKLOAD, **NETWORK_LABELS},
            )
        except docker.errors.APIError as error:
            if find_network(client) is None:  # else a concurrent start made it first
                raise RunError(
                    f"could not create the overlay network {NETWORK} "
                    f"({error.explanation}): is the engine a swarm manager?"
                ) from None
        network = find_network(client)
        if network is None:
            raise RunError(f"the overlay network {NETWORK} vanished as it was made: start again")
    return network["Id"]


def attach_s3_server(
    client: docker.DockerClient, container, network_id: str, timeout_s: float = NETWORK_TIMEOUT_S
) -> None:
    """Put the S3 server on the runs' network as LOCAL_S3_ALIAS, the host of the endpoint
    the services are told, unless it is there already (a GitOps run puts it there)."""
    attached = container.attrs["NetworkSettings"]["Networks"].get(NETWORK)
    if attached is None:
        _until_found(
            lambda: client.api.connect_container_to_network(
                container.id, network_id, aliases=[LOCAL_S3_ALIAS]
            ),
            timeout_s,
            f"could not attach {container.name} to {NETWORK}",
        )
    elif LOCAL_S3_ALIAS not in (attached.get("Aliases") or []):
        raise RunError(
            f"{container.name} is on {NETWORK} but not as {LOCAL_S3_ALIAS}: "
            f"`docker network disconnect {NETWORK} {container.name}`, then start "
            "again"
        )


def remove_network_if_unused(client: docker.DockerClient, timeout_s: float) -> list[str]:
    """Remove `sagemaker-local` if trackday made it and no DeepRacer service is left (the
    network a stack declares is Pulumi's: it carries no WORKLOAD label)."""
    if client.api.services(filters={"label": f"{WORKLOAD_LABEL}={WORKLOAD}"}):
        return []
    network = find_network(client)
    if network is None or (network.get("Labels") or {}).get(WORKLOAD_LABEL) != WORKLOAD:
        return []
    try:
        detached = _detach_s3_servers(client, network["Id"])
    except docker.errors.NotFound:  # listed while the swarm is still removing it
        remove_network(client, network["Id"], timeout_s)  # waits until it is no longer listed
        return []
    return [*detached, NETWORK] if remove_network(client, network["Id"], timeout_s) else detached


def remove_network(client: docker.DockerClient, network_id: str, timeout_s: float) -> bool:
    """Remove the network and wait until the engine no longer lists it; False if it was
    gone already. Endpoints of just-removed tasks may hold it a while: retried to a deadline."""
    deadline = time.monotonic() + timeout_s
    removed = True
    while True:
        try:
            client.api.remove_network(network_id)
            break
        except docker.errors.NotFound:
            removed = False
            break
        except docker.errors.APIError as error:
            if time.monotonic() > deadline:
                raise RunError(
                    f"could not remove {NETWORK} ({error.explanation}): check "
                    f"`docker network inspect {NETWORK}` for what still uses it"
                ) from None
            time.sleep(POLL_S)
    while (network := find_network(client)) is not None and network["Id"] == network_id:
        if time.monotonic() > deadline:
            raise RunError(f"{NETWORK} is still listed {timeout_s:.0f} s after its removal")
        time.sleep(POLL_S)
    return removed


def _detach_s3_servers(client: docker.DockerClient, network_id: str) -> list[str]:
    """Take the S3 servers that `start-*` attached (containers on the network as
    LOCAL_S3_ALIAS, not run by Swarm) off the network, so that it can go."""
    detached = []
    for container_id in client.api.inspect_network(network_id).get("Containers") or {}:
        try:
            container = client.containers.get(container_id)
        except docker.errors.NotFound:  # the overlay's load balancer endpoint, a gone task
            continue
        attached = container.attrs["NetworkSettings"]["Networks"].get(NETWORK) or {}
        if LOCAL_S3_ALIAS in (attached.get("Aliases") or []) and (
            SWARM_TASK_LABEL not in container.labels
        ):
            client.api.disconnect_container_from_network(container.id, network_id)
            detached.append(f"{container.name} from {NETWORK}")
    return detached


def _until_found(call: Callable[[], T], timeout_s: float, what: str) -> T:
    """`call()`, again while the engine answers "not found" for a network it has just made
    (its local copy of a swarm network comes lazily), up to a deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except docker.errors.APIError as error:
            transient = error.status_code == 404 or "not found" in str(error.explanation)
            if not transient or time.monotonic() > deadline:
                raise RunError(f"{what}: {error.explanation}") from None
            time.sleep(POLL_S)
