"""One-shot jobs on a Docker Swarm: run a container once on a labelled node, follow it, clean up.

`trackday donkey submit --stack aws|azure` runs the trainer this way on the swarm's manager,
reached with the docker SDK over SSH (trackday/manager_ssh.py). A job is a one-replica service with
restart condition none, placed by the node labels the bootstrap set (infra/bootstrap/);
its logs are followed until the task ends, and the service is removed afterwards whatever
happens (success, failure, Ctrl-C), so no job is left behind to restart or to bill; except a
job its node's spot notice stopped and marked (RESUME_LABEL): the node runs that one again at
its next boot (infra/bootstrap/spot.py), so its service and secret stay.

A job is described as the contract's `ServiceSpec` (contract/swarm.py), as a DeepRacer
service is, and `task_template` is the one translation of that data to the docker SDK: for
these jobs and for `trackday dr` runs (trackday/dr_runs.py). Credentials travel only where
the node has no identity (the S3 gateway on Azure): as a Swarm secret mounted as an AWS
credentials file, never as an environment variable that `docker service inspect` would show.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors
from docker.types import (
    CancellableStream,
    ContainerSpec,
    DriverConfig,
    Placement,
    Resources,
    RestartPolicy,
    SecretReference,
    ServiceMode,
    TaskTemplate,
)
from docker.types import Mount as DockerMount

from contract.swarm import (
    CREDENTIALS_PATH,
    GPU_RESOURCE,
    JOB_LABEL,
    RESUME_LABEL,
    ROLE_LABEL,
    ROLE_LABEL_VALUES,
    WORKLOAD_LABEL,
    Mount,
    SecretMount,
    ServiceSpec,
    credentials_secret_name,
    placement,
    s3_credentials_file,
)
from trackday.errors import TrackdayError

# Task states after which nothing more happens (docker's swarm task lifecycle).
FINAL_STATES = frozenset({"complete", "failed", "rejected", "shutdown", "orphaned", "remove"})
# A job whose node's spot notice stopped it and marked its service for the next boot.
INTERRUPTED_STATE = "interrupted"
# States in which the scheduler has not yet found a node for the task.
UNPLACED_STATES = frozenset({"new", "pending"})
_NAME_PATTERN = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}")
_ENV_NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CREDENTIAL_VARIABLES = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AZURE_STORAGE_KEY"}
)


class SwarmJobError(TrackdayError):
    """A job could not be defined, started or followed; the message says what to do."""


@dataclass(frozen=True)
class S3Credentials:
    """An S3 key pair for nodes without an identity that the bucket trusts (the Azure gateway)."""

    access_key_id: str
    secret_access_key: str

    def credentials_file(self) -> bytes:
        """The AWS shared-credentials file that botocore (and so s3fs) reads."""
        return s3_credentials_file(self.access_key_id, self.secret_access_key).encode()


@dataclass(frozen=True)
class SwarmJob:
    """A container to run once on a node of the given role."""

    name: str
    image: str
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    role: str = ROLE_LABEL_VALUES["manager"]
    gpus: int = 0
    workload: str = "donkeycar-train"

    def __post_init__(self) -> None:
        if not _NAME_PATTERN.fullmatch(self.name):
            raise SwarmJobError(
                f"job name {self.name!r} is not a valid service name: use up to 63 letters,"
                " digits, '_', '.' and '-', starting with a letter or digit"
            )
        if self.role not in ROLE_LABEL_VALUES.values():
            roles = ", ".join(ROLE_LABEL_VALUES.values())
            raise SwarmJobError(f"job role {self.role!r} is not one of {roles}")
        if self.gpus < 0:
            raise SwarmJobError(f"job GPU count {self.gpus} must be 0 or more")
        for name in self.env:
            if not _ENV_NAME_PATTERN.fullmatch(name):
                raise SwarmJobError(f"environment variable name {name!r} is not valid")
            if name in _CREDENTIAL_VARIABLES:
                raise SwarmJobError(
                    f"{name} must not be passed in a job's environment (it would show in"
                    " `docker service inspect`): pass S3Credentials, or use the node's identity"
                )


def secret_name(job: SwarmJob) -> str:
    """The Swarm secret that holds a job's S3 credentials (one per job, removed with it)."""
    return credentials_secret_name(job.name)


def job_service(job: SwarmJob, with_credentials: bool = False) -> ServiceSpec:
    """The service that runs `job` once.

    One run of one task: one replica that is never restarted (not a `replicated-job`:
    engines up to at least 20.10 leave a job's running container behind when the service
    is removed, which would defeat Ctrl-C), on a node labelled
    `trackday.role=<role>`, with the host's network (the bucket endpoint and the cloud's
    metadata service are then reached as from the node itself), a read-only root with a
    tmpfs /tmp, and the workload label the node's idle check looks for.
    """
    env = dict(job.env)
    if with_credentials:
        env["AWS_SHARED_CREDENTIALS_FILE"] = CREDENTIALS_PATH
    return ServiceSpec(
        name=job.name,
        image=job.image,
        args=job.args,
        env=env,
        constraints=(placement(job.role),),
        mounts=(Mount(None, "/tmp", type="tmpfs"),),
        secrets=(SecretMount(secret_name(job)),) if with_credentials else (),
        labels={WORKLOAD_LABEL: job.workload, JOB_LABEL: job.name},
        service_labels={JOB_LABEL: job.name},
        networks=("host",),
        read_only=True,
        gpus=job.gpus,
    )


def task_template(spec: ServiceSpec, secret_ids: Mapping[str, str]) -> TaskTemplate:
    """The docker SDK's task template for a service (`secret_ids`: secret name to id)."""
    container = ContainerSpec(
        spec.image,
        args=list(spec.args),
        env=dict(spec.env),
        workdir=spec.working_dir,
        labels=dict(spec.labels),
        mounts=[
            DockerMount(m.target, m.source, type=m.type, read_only=m.read_only) for m in spec.mounts
        ],
        secrets=[
            SecretReference(secret_ids[s.secret], s.secret, filename=s.file) for s in spec.secrets
        ]
        or None,
        init=spec.init or None,
        read_only=spec.read_only or None,
    )
    log_driver = DriverConfig(spec.log_driver, dict(spec.log_options)) if spec.log_driver else None
    resources = Resources(generic_resources={GPU_RESOURCE: spec.gpus}) if spec.gpus else None
    return TaskTemplate(
        container,
        restart_policy=RestartPolicy(condition=spec.restart_condition),
        placement=Placement(constraints=list(spec.constraints)),
        networks=list(spec.networks),
        log_driver=log_driver,
        resources=resources,
    )


def create_service_args(spec: ServiceSpec, secret_ids: Mapping[str, str]) -> dict[str, Any]:
    """Keyword arguments of `docker.APIClient.create_service` for a service."""
    return {
        "task_template": task_template(spec, secret_ids),
        "name": spec.name,
        "labels": spec.own_labels,
        "mode": ServiceMode("replicated", replicas=spec.replicas),
    }


def service_spec(job: SwarmJob, credentials_secret_id: str | None = None) -> dict[str, Any]:
    """Keyword arguments of `docker.APIClient.create_service` for `job` (`job_service`);
    `credentials_secret_id`: the id of its credentials secret, if it has one."""
    with_credentials = credentials_secret_id is not None
    secret_ids = {secret_name(job): credentials_secret_id} if with_credentials else {}
    return create_service_args(job_service(job, with_credentials), secret_ids)


@dataclass(frozen=True)
class JobResult:
    """How a job's one task ended."""

    state: str
    exit_code: int | None
    message: str

    @property
    def succeeded(self) -> bool:
        return self.state == "complete" and self.exit_code == 0

    @property
    def interrupted(self) -> bool:
        """A spot notice stopped it and kept its service: its node runs it again at boot."""
        return self.state == INTERRUPTED_STATE


def run_job(
    client: docker.DockerClient,
    job: SwarmJob,
    on_line: Callable[[str], None],
    credentials: S3Credentials | None = None,
    placement_timeout_s: float = 300.0,
    poll_s: float = 1.0,
) -> JobResult:
    """Run `job` to its end, passing each log line to `on_line`; remove what it made, unless
    a spot notice stopped it: its service (and secret) then stay for the node's next boot,
    which runs it again (infra/bootstrap/spot.py).

    The image must be on the node or pullable by it: the SDK forwards this machine's
    registry login for the image (as `docker service create --with-registry-auth` does).
    """
    service_id = None
    secret_id = None
    try:
        try:
            if credentials is not None:
                secret_id = client.api.create_secret(
                    secret_name(job), credentials.credentials_file(), labels={JOB_LABEL: job.name}
                )["ID"]
            service_id = client.api.create_service(**service_spec(job, secret_id))["ID"]
        except docker.errors.APIError as exc:
            raise SwarmJobError(f"could not start job {job.name}: {exc.explanation}") from None
        result = _follow(client, service_id, job, on_line, placement_timeout_s, poll_s)
        if RESUME_LABEL in (client.api.inspect_service(service_id)["Spec"].get("Labels") or {}):
            service_id = secret_id = None  # kept for the node's next boot
            return JobResult(INTERRUPTED_STATE, result.exit_code, result.message)
        return result
    finally:
        if service_id is not None:
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_service(service_id)
        if secret_id is not None:
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_secret(secret_id)


def _follow(
    client: docker.DockerClient,
    service_id: str,
    job: SwarmJob,
    on_line: Callable[[str], None],
    placement_timeout_s: float,
    poll_s: float,
) -> JobResult:
    """Poll the task's state while a thread streams its logs; then print any lines it missed."""
    started = time.monotonic()
    follower: _LogFollower | None = None
    task = None
    try:
        while True:
            found = _task(client, service_id)
            if found is None and task is not None:
                state = "remove"  # gone: the service was scaled to zero (a spot notice)
                break
            task = found
            state = task["Status"]["State"] if task else "new"
            if follower is None and state not in UNPLACED_STATES:
                follower = _LogFollower(client.api, service_id, on_line)
                follower.start()
            if state in FINAL_STATES:
                break
            if state in UNPLACED_STATES and time.monotonic() - started > placement_timeout_s:
                why = (task or {}).get("Status", {}).get("Err") or "no node accepted it"
                return JobResult(
                    state,
                    None,
                    f"not placed after {placement_timeout_s:.0f} s: {why} (is a node labelled"
                    f" {ROLE_LABEL}={job.role} up, with the resources asked for?)",
                )
            time.sleep(poll_s)
    finally:
        printed = follower.stop() if follower is not None else 0
    for line in _all_lines(client, service_id)[printed:]:
        on_line(line)
    status = task["Status"]
    exit_code = status.get("ContainerStatus", {}).get("ExitCode")
    return JobResult(state, exit_code, status.get("Err") or status.get("Message", ""))


def _task(client: docker.DockerClient, service_id: str) -> dict[str, Any] | None:
    tasks = client.api.tasks(filters={"service": service_id})
    return max(tasks, key=lambda t: t["CreatedAt"]) if tasks else None


def _all_lines(client: docker.DockerClient, service_id: str) -> list[str]:
    """Every log line of the service so far, split exactly as the follower splits them."""
    raw = b"".join(client.api.service_logs(service_id, stdout=True, stderr=True, follow=False))
    lines = raw.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return [line.decode(errors="replace") for line in lines]


class _LogFollower(threading.Thread):
    """Streams a service's logs (follow mode) line by line until `stop()`.

    The Engine keeps a follow stream open after the task ends, so `stop()` cuts it (a
    CancellableStream shuts its socket down) and returns how many whole lines were passed
    on; `_follow` prints the rest from a final, complete read.
    """

    def __init__(
        self, api: docker.APIClient, service_id: str, on_line: Callable[[str], None]
    ) -> None:
        super().__init__(daemon=True, name=f"logs-{service_id[:12]}")
        url = f"{api.base_url}/v{api.api_version}/services/{service_id}/logs"
        params = {"follow": 1, "stdout": 1, "stderr": 1}
        response = api.get(url, params=params, stream=True, timeout=None)
        response.raise_for_status()
        self._stream = CancellableStream(_frames(response.raw.read), response)
        self._on_line = on_line
        self._lock = threading.Lock()
        self._stopped = False
        self.count = 0

    def run(self) -> None:
        pending = b""
        for payload in self._stream:
            pending += payload
            *lines, pending = pending.split(b"\n")
            for line in lines:
                with self._lock:
                    if self._stopped:
                        return
                    self._on_line(line.decode(errors="replace"))
                    self.count += 1

    def stop(self) -> int:
        """Cut the stream; the number of lines passed on (none is passed on after this)."""
        with self._lock:
            self._stopped = True
            count = self.count
        # Over ssh:// the stream cannot be cut; the idle daemon thread ends with the process.
        with contextlib.suppress(Exception):
            self._stream.close()
        return count


def _frames(read: Callable[[int], bytes]) -> Iterator[bytes]:
    """Payloads of the Engine's multiplexed log stream: an 8-byte header, then its payload."""
    while True:
        header = _read_exactly(read, 8)
        if len(header) < 8:
            return
        payload = _read_exactly(read, int.from_bytes(header[4:8], "big"))
        yield payload


def _read_exactly(read: Callable[[int], bytes], size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = read(size - len(data))
        if not chunk:
            break
        data += chunk
    return data
