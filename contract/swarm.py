"""The Swarm contract: what the node bootstrap, the CLI and the Pulumi program agree on.

The node labels the bootstrap sets and services are placed by (infra/bootstrap/), the
label that keeps a node's idle power-off waiting, the generic resource GPUs are advertised
as, the labels a run's or job's services carry, the credentials secret's name and file
text, and `ServiceSpec`: one Swarm service as plain data, for DonkeyCar jobs
(trackday/swarm_jobs.py) and DeepRacer services (training/deepracer/services.py) alike.
Two translators deploy it: `trackday.swarm_jobs.task_template` (docker SDK, the CLI) and
`infra.workloads.deepracer.service_args` (pulumi-docker, the program).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

ROLE_LABEL = "trackday.role"
TRAINER_ROLE = "trainer"
SIMULATION_ROLE = "simulation"
# The role label's value on a node of each bootstrap role.
ROLE_LABEL_VALUES: dict[str, str] = {"manager": TRAINER_ROLE, "worker": SIMULATION_ROLE}
# Containers carrying this label keep a node busy: the idle power-off waits for them.
WORKLOAD_LABEL = "trackday.workload"
JOB_LABEL = "trackday.job"
RUN_LABEL = "trackday.run"
MODEL_PREFIX_LABEL = "trackday.model-prefix"
# On a service a spot notice stopped: the replicas its node's next boot gives back
# (infra/bootstrap/spot.py); a DonkeyCar job carrying it is kept, not removed, by its submitter.
RESUME_LABEL = "trackday.spot.resume"
# The Swarm generic resource a node's GPUs are advertised as. The NVIDIA runtime reads the
# GPU Swarm assigned to a task from DOCKER_RESOURCE_<KIND>, and its `swarm-resource` setting
# names DOCKER_RESOURCE_GPU: so the kind is GPU.
GPU_RESOURCE = "GPU"
# S3 keys, where the node has no identity the bucket trusts, reach the containers as a Swarm
# secret holding an AWS shared-credentials file (never as environment variables, which
# `docker service inspect` shows). botocore (s3fs, the simulator, the SageMaker SDK) reads it.
CREDENTIALS_FILE = "s3-credentials"
CREDENTIALS_PATH = f"/run/secrets/{CREDENTIALS_FILE}"


def credentials_secret_name(service_prefix: str) -> str:
    """The Swarm secret holding the S3 credentials of the services named `service_prefix`."""
    return f"{service_prefix}-s3"


def s3_credentials_file(access_key_id: str, secret_access_key: str) -> str:
    """The AWS shared-credentials file a credentials secret holds."""
    return (
        f"[default]\naws_access_key_id = {access_key_id}\n"
        f"aws_secret_access_key = {secret_access_key}\n"
    )


_NODE_LABELS = "node.labels."


def placement(role: str) -> str:
    """The constraint that puts a service on the nodes of a role."""
    return f"{_NODE_LABELS}{ROLE_LABEL}=={role}"


def constraint_label(constraint: str) -> tuple[str, str]:
    """The node label (key, value) a `node.labels.KEY==VALUE` constraint asks for."""
    key, _, value = constraint.removeprefix(_NODE_LABELS).partition("==")
    return key, value


@dataclass(frozen=True)
class Mount:
    source: str | None  # None for a tmpfs
    target: str
    type: str = "bind"
    read_only: bool = False


@dataclass(frozen=True)
class SecretMount:
    """A Swarm secret (by name) mounted as `/run/secrets/<file>`."""

    secret: str
    file: str = CREDENTIALS_FILE


@dataclass(frozen=True)
class ServiceSpec:
    """One Swarm service. `labels` go on the service and its containers; `service_labels`,
    where given, replace them on the service alone."""

    name: str
    image: str
    args: tuple[str, ...]
    env: Mapping[str, str]
    constraints: tuple[str, ...]
    replicas: int = 1
    mounts: tuple[Mount, ...] = ()
    secrets: tuple[SecretMount, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    service_labels: Mapping[str, str] | None = None
    networks: tuple[str, ...] = ()
    working_dir: str | None = None
    init: bool = False
    read_only: bool = False  # the container's root filesystem
    restart_condition: str = "none"  # a finished or failed run must not start over
    log_driver: str | None = None
    log_options: Mapping[str, str] = field(default_factory=dict)
    gpus: int = 0  # Swarm generic resource GPU reserved per task

    @property
    def own_labels(self) -> dict[str, str]:
        """The labels on the service itself."""
        return dict(self.labels if self.service_labels is None else self.service_labels)
