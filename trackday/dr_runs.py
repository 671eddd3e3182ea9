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
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import docker
import docker.errors

from contract.swarm import (
    JOB_LABEL,
    MODEL_PREFIX_LABEL,
    ROLE_LABEL,
    RUN_LABEL,
    WORKLOAD_LABEL,
    ServiceSpec,
    s3_credentials_file,
)
from infra.workloads.run_target import RunTarget, placement_problem
from trackday.dr_network import attach_s3_server, ensure_network, remove_network_if_unused
from trackday.errors import ManagerError, RunError
from trackday.manager_ssh import connect
from trackday.swarm_jobs import create_service_args
from training import storage
from training.deepracer import bucket_io
from training.deepracer.layout import RunLayout
from training.deepracer.model_upload import UploadPlan
from training.deepracer.params import evaluation_files, training_files
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


def upload_training_files(
    settings: DeepRacerSettings, target: RunTarget, custom_files: Path, wipe: bool
) -> list[str]:
    """dr-upload-custom-files plus the params half of dr-start-training, with its `-w` rule."""
    with storage.environment(target.storage_env):
        bucket_io.claim_prefix(target.bucket_url, settings.model_prefix, wipe, "pass --wipe")
        files = training_files(settings, target.bucket, custom_files)
        return bucket_io.write_objects(target.bucket_url, files)


def upload_evaluation_files(settings: DeepRacerSettings, target: RunTarget) -> tuple[str, list]:
    """`evaluation_params.yaml` for an evaluation starting now; returns its stamp and URLs."""
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    with storage.environment(target.storage_env):
        model = RunLayout.of(settings).model_dir
        if not storage.exists(storage.join(target.bucket_url, model)):
            raise RunError(
                f"{target.bucket_url}/{model} does not exist: evaluate a trained "
                "model (check modelPrefix)"
            )
        files = evaluation_files(settings, target.bucket, stamp)
        return stamp, bucket_io.write_objects(target.bucket_url, files)


def copy_model(
    source_url: str,
    target_url: str,
    target_prefix: str,
    plan: UploadPlan,
    source_env: Mapping[str, str],
    target_env: Mapping[str, str],
    wipe: bool = False,
) -> list[str]:
    """Carry out an upload plan: stream from the run's bucket to the upload bucket
    (`target_url`; each side with its own endpoint and credentials); returns the keys."""
    source, target = storage.Endpoint.from_env(source_env), storage.Endpoint.from_env(target_env)
    copies = {dest: storage.join(source_url, key) for dest, key in plan.copies.items()}
    for url in copies.values():  # all there before the target is touched
        if not storage.exists(url, endpoint=source):
            raise storage.StorageError(f"{url}: no such object")
    with storage.environment(target_env):
        if wipe:
            bucket_io.delete_prefix(target_url, target_prefix)
        for dest, url in copies.items():
            storage.copy(
                url,
                storage.join(target_url, dest),
                source_endpoint=source,
                target_endpoint=target,
                sidecar=False,
            )
        bucket_io.write_objects(target_url, plan.writes)
    return sorted({*copies, *plan.writes})


# --- the swarm side ----------------------------------------------------------------------


def _run_filters(run_id: int, job: str | None = None) -> dict[str, list[str]]:
    labels = [f"{WORKLOAD_LABEL}={WORKLOAD}", f"{RUN_LABEL}={run_id}"]
    return {"label": labels + ([f"{JOB_LABEL}={job}"] if job else [])}


def s3_server(client: docker.DockerClient, name: str):
    """The local target's S3 server container (the stack output `s3Container`)."""
    try:
        return client.containers.get(name)
    except docker.errors.NotFound:
        raise RunError(
            f"the stack's S3 server container {name} does not exist: run `pulumi up` for the stack"
        ) from None


def ensure_not_running(client: docker.DockerClient, run_id: int, job: str) -> None:
    if client.api.services(filters=_run_filters(run_id, job)):
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
    services = client.api.services(filters=_run_filters(run_id, job))
    for service in services:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_service(service["ID"])
            removed.append(service["Spec"]["Name"])
    _wait_for_tasks_gone(client, [s["ID"] for s in services], timeout_s)
    for secret in client.api.secrets(filters=_run_filters(run_id, job)):
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
    filters = _run_filters(run_id, job)
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
