"""What runs on a stack's swarm: its DeepRacer services, their tasks, and their logs
(`trackday dr status`, `logs`, `summary`). Services are found by the labels
trackday/dr_runs.py gives them (contract/swarm.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import docker

from contract.swarm import JOB_LABEL, MODEL_PREFIX_LABEL, ROLE_LABEL, RUN_LABEL, WORKLOAD_LABEL
from trackday.errors import RunError
from training.deepracer.services import WORKLOAD


def run_filters(run_id: int, job: str | None = None) -> dict[str, list[str]]:
    labels = [f"{WORKLOAD_LABEL}={WORKLOAD}", f"{RUN_LABEL}={run_id}"]
    return {"label": labels + ([f"{JOB_LABEL}={job}"] if job else [])}


@dataclass(frozen=True)
class ServiceStatus:
    run_id: str
    job: str
    name: str
    replicas: int
    running: int
    tasks: tuple[str, ...]  # "slot: state on node"
    model_prefix: str = ""
    created: str = ""  # the engine's CreatedAt (RFC 3339, UTC)
    role: str = ""  # trainer or simulation (its ROLE_LABEL)


def status(client: docker.DockerClient) -> list[ServiceStatus]:
    """Every DeepRacer service on the swarm, with its tasks' states and nodes."""
    nodes = {n["ID"]: n["Description"]["Hostname"] for n in client.api.nodes()}
    found = []
    for service in client.api.services(filters={"label": f"{WORKLOAD_LABEL}={WORKLOAD}"}):
        spec = service["Spec"]
        tasks = [
            t
            for t in client.api.tasks(filters={"service": service["ID"]})
            if t.get("DesiredState") != "shutdown"
        ]
        described = tuple(
            sorted(
                f"{t.get('Slot', '-')}: {t['Status']['State']} on {nodes.get(t.get('NodeID'), '-')}"
                for t in tasks
            )
        )
        found.append(
            ServiceStatus(
                spec["Labels"].get(RUN_LABEL, "?"),
                spec["Labels"].get(JOB_LABEL, "?"),
                spec["Name"],
                spec["Mode"].get("Replicated", {}).get("Replicas", 0),
                sum(t["Status"]["State"] == "running" for t in tasks),
                described,
                spec["Labels"].get(MODEL_PREFIX_LABEL, ""),
                service.get("CreatedAt", ""),
                spec["Labels"].get(ROLE_LABEL, ""),
            )
        )
    return sorted(found, key=lambda s: (s.run_id, s.job, s.name))


def service_of(client: docker.DockerClient, run_id: int, job: str, role: str) -> dict:
    filters = run_filters(run_id, job)
    filters["label"].append(f"{ROLE_LABEL}={role}")
    services = client.api.services(filters=filters)
    if not services:
        raise RunError(
            f"run {run_id} has no {job} {role} service (`trackday dr status` lists what runs)"
        )
    return services[0]


def logs(
    client: docker.DockerClient,
    service: dict,
    worker: int | None,
    follow: bool,
    on_line: Callable[[str], None],
    tail: int | str = "all",
) -> None:
    """Pass a service's log lines (or one worker's: its task slot `worker`) to `on_line`.

    The docker SDK reads service logs but not one task's, so both go through its own
    request and stream helpers, with the Engine's `/services|tasks/{id}/logs` endpoints."""
    api = client.api
    if worker is None:
        url = api._url("/services/{0}/logs", service["ID"])
    else:
        tasks = [
            t for t in api.tasks(filters={"service": service["ID"]}) if t.get("Slot") == worker
        ]
        if not tasks:
            raise RunError(
                f"{service['Spec']['Name']} has no worker {worker} (workers are "
                f"1..{service['Spec']['Mode']['Replicated']['Replicas']})"
            )
        task = max(tasks, key=lambda t: t["CreatedAt"])
        url = api._url("/tasks/{0}/logs", task["ID"])
    response = api._get(
        url, params={"follow": follow, "stdout": True, "stderr": True, "tail": tail}, stream=True
    )
    pending = b""
    for chunk in api._get_result_tty(True, response, False):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            on_line(line.decode(errors="replace"))
    if pending:
        on_line(pending.decode(errors="replace"))
