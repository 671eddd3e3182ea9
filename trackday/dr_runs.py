"""DeepRacer runs on a stack's swarm from the command line, as DRfC's `dr-*` commands run them.

`trackday dr start-training` uploads the custom files and `training_params.yaml` to the
run's model prefix (refusing to overwrite an earlier model unless `--wipe`), then creates
the trainer and the simulation workers; `start-evaluation` writes `evaluation_params.yaml`
and creates the evaluation worker. Both deploy exactly the service data of
training/deepracer/services.py, the data the Pulumi program deploys from the stack config,
with the docker SDK: the local engine for the `local` target, the manager over `ssh://`
for the clouds (trackday/manager_ssh.py connects). On the local target the stack's S3 server
joins `sagemaker-local` as `s3`, the endpoint the services are told. Runs live side by side
by run id; `stop-*` removes a run's services, its credentials secret, the SageMaker container
its trainer started, and, once no run needs it, the `sagemaker-local` network it made (the
S3 server leaves it first).

This module is the swarm side (engine, checks, create, remove); trackday/dr_run_files.py
writes and copies a run's objects in the bucket, trackday/dr_status.py reads what runs.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import tarfile
import time
from pathlib import Path

import docker
import docker.errors

from contract.swarm import (
    JOB_LABEL,
    RUN_LABEL,
    WORKLOAD_LABEL,
    ServiceSpec,
    s3_credentials_file,
)
from infra.workloads.run_target import RunTarget, placement_problem
from trackday.dr_network import attach_s3_server, ensure_network, remove_network_if_unused
from trackday.dr_status import run_filters
from trackday.errors import ManagerError, RunError
from trackday.manager_ssh import connect
from trackday.swarm_jobs import create_service_args
from training.deepracer.services import (
    SAGEMAKER_DIR,
    WORKLOAD,
    credentials_secret,
    run_services,
)
from training.deepracer.settings import DeepRacerSettings

REMOVAL_TIMEOUT_S = 60.0
# Containers the SageMaker SDK's local mode starts for the trainer (docker compose services).
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"
HYPERPARAMETERS_PATH = "/opt/ml/input/config/hyperparameters.json"


def client_for(target: RunTarget) -> docker.DockerClient:
    manager = target.manager
    if manager is None:
        try:
            return docker.from_env()
        except docker.errors.DockerException as error:
            raise RunError(f"cannot reach this machine's Docker engine: {error}") from None
    try:
        return connect(
            manager.address, manager.user, manager.private_key, host_key=manager.host_key
        )
    except ManagerError as error:
        raise RunError(str(error)) from None


def s3_server(client: docker.DockerClient, name: str):
    """The local target's S3 server container (the stack output `s3Container`)."""
    try:
        return client.containers.get(name)
    except docker.errors.NotFound:
        raise RunError(
            f"the stack's S3 server container {name} does not exist: run `pulumi up` for the stack"
        ) from None


def ensure_not_running(client: docker.DockerClient, run_id: int, job: str) -> None:
    if client.api.services(filters=run_filters(run_id, job)):
        raise RunError(
            f"run {run_id} already has {job} services: stop it first "
            f"(`trackday dr stop-{job}`), or set another runId"
        )


def check_placement(
    client: docker.DockerClient, specs: list[ServiceSpec], local: bool = False
) -> None:
    """Fail before creating anything where Swarm would keep a service's tasks pending
    without a word: no swarm, or no ready node with a label a service needs."""
    try:
        nodes = client.api.nodes()
    except docker.errors.APIError:
        nodes = None
    gpus: dict[str, int] = {}
    for spec in specs:
        for constraint in spec.constraints:
            gpus[constraint] = gpus.get(constraint, 0) + spec.gpus * spec.replicas
    problem = placement_problem(nodes, [c for spec in specs for c in spec.constraints], local, gpus)
    if problem:
        raise RunError(problem)


def sagemaker_dir(path: Path = Path(SAGEMAKER_DIR)) -> None:
    """The trainer's bind mount on this machine (nodes make theirs at boot), made so that no
    other local user can own or fill it first: it is mounted into the trainer, which holds
    the Docker socket (issue 13 item 12). An existing one must be a real folder, owned by
    this user or root, writable by nobody else."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    fix = f"remove it (`sudo rm -rf {path}`) and start again"
    if not stat.S_ISDIR(info.st_mode):
        raise RunError(f"{path} is not a folder (a link or a file someone made): {fix}")
    if info.st_uid not in (os.getuid(), 0):
        raise RunError(f"{path} belongs to user id {info.st_uid}, not to you or root: {fix}")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise RunError(
            f"{path} is writable by other users (mode {info.st_mode & 0o777:o}): "
            f"`chmod go-w {path}`, or {fix}"
        )


def check_deploy(
    client: docker.DockerClient, settings: DeepRacerSettings, target: RunTarget, job: str
) -> list[ServiceSpec]:
    """Everything a start needs of the swarm and this machine, checked before the bucket is
    touched (so `--wipe` never deletes a model for a start that cannot happen); the specs."""
    ensure_not_running(client, settings.run_id, job)
    try:
        specs = run_services(settings, target.site, job)
    except ValueError as error:
        raise RunError(str(error)) from None
    check_placement(client, specs, target.manager is None)
    if target.s3_container:
        s3_server(client, target.s3_container)
    if target.manager is None:
        sagemaker_dir()
    return specs


def deploy(
    client: docker.DockerClient, settings: DeepRacerSettings, target: RunTarget, job: str
) -> list[str]:
    """Create the run's services (and its credentials secret); all or nothing."""
    specs = check_deploy(client, settings, target, job)
    s3 = s3_server(client, target.s3_container) if target.s3_container else None
    network_id = ensure_network(client)
    labels = {WORKLOAD_LABEL: WORKLOAD, RUN_LABEL: str(settings.run_id), JOB_LABEL: job}
    created: list[str] = []
    try:
        if s3 is not None:
            attach_s3_server(client, s3, network_id)
        secret_ids = {}
        if target.credentials is not None:
            name = credentials_secret(settings, job)
            data = s3_credentials_file(*target.credentials).encode()
            secret_ids[name] = client.api.create_secret(name, data, labels=labels)["ID"]
        for spec in specs:
            client.api.create_service(**create_service_args(spec, secret_ids))
            created.append(spec.name)
    except docker.errors.APIError as error:
        stop(client, settings.run_id, job, settings.model_prefix)
        raise RunError(
            f"could not start run {settings.run_id} ({job}): {error.explanation}"
        ) from None
    return created


def stop(
    client: docker.DockerClient,
    run_id: int,
    job: str,
    model_prefix: str | None = None,
    timeout_s: float = REMOVAL_TIMEOUT_S,
) -> list[str]:
    """Remove what a run made: services, secret, the trainer's SageMaker containers, and the
    overlay network once no DeepRacer service is left. Returns the names removed."""
    removed = []
    services = client.api.services(filters=run_filters(run_id, job))
    for service in services:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_service(service["ID"])
            removed.append(service["Spec"]["Name"])
    _wait_for_tasks_gone(client, [s["ID"] for s in services], timeout_s)
    for secret in client.api.secrets(filters=run_filters(run_id, job)):
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_secret(secret["ID"])
            removed.append(secret["Spec"]["Name"])
    if job == "training" and model_prefix:
        for container in sagemaker_containers(client, model_prefix):
            container.remove(force=True)
            removed.append(container.name)
    removed += remove_network_if_unused(client, timeout_s)
    return removed


def _wait_for_tasks_gone(
    client: docker.DockerClient, service_ids: list[str], timeout_s: float
) -> None:
    """Swarm removes a service's containers after the service; wait (for those on the
    manager, where the trainer runs) so that nothing lingers and the network can go."""
    deadline = time.monotonic() + timeout_s
    for service_id in service_ids:
        # The plain listing: `containers.list` inspects each container it lists, and fails
        # (NotFound) on one that Swarm removes in between, as it does here.
        while client.api.containers(
            all=True, filters={"label": f"com.docker.swarm.service.id={service_id}"}
        ):
            if time.monotonic() > deadline:
                raise RunError(
                    f"service {service_id[:12]}'s containers still exist after "
                    f"{timeout_s:.0f} s; check `docker ps -a` on the nodes"
                )
            time.sleep(0.5)


def sagemaker_containers(client: docker.DockerClient, model_prefix: str) -> list:
    """The containers SageMaker local mode started for the trainer of `model_prefix`: compose
    services `algo-*` whose hyperparameters name this model prefix (as DRfC finds them)."""
    found = []
    for container in client.containers.list(all=True, filters={"label": COMPOSE_SERVICE_LABEL}):
        if not container.labels.get(COMPOSE_SERVICE_LABEL, "").startswith("algo-"):
            continue
        if _hyperparameter(container, "s3_prefix") == model_prefix:
            found.append(container)
    return found


def _hyperparameter(container, name: str) -> str | None:
    """One hyperparameter SageMaker handed the container (values are JSON-encoded)."""
    try:
        chunks, _ = container.get_archive(HYPERPARAMETERS_PATH)
    except docker.errors.NotFound:
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        member = tar.extractfile(tar.getmembers()[0])
        values = json.loads(member.read()) if member else {}
    value = values.get(name)
    with contextlib.suppress(TypeError, ValueError):
        value = json.loads(value)
    return value if isinstance(value, str) else None
