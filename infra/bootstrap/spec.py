"""What a node is made of: its plain-value description, checked, the paths its files live at,
and the header every node script shares. Everything else in the package renders from these."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from contract.swarm import ROLE_LABEL, ROLE_LABEL_VALUES

Role = Literal["manager", "worker"]
Cloud = Literal["aws", "azure", "gcp"]

SWARM_PORT = 2377

BOOTSTRAP_SCRIPT = "/usr/local/sbin/trackday-bootstrap"
NODE_ENV_SCRIPT = "/usr/local/sbin/trackday-node-env"
POWEROFF_SCRIPT = "/usr/local/sbin/trackday-poweroff"
IDLE_SCRIPT = "/usr/local/sbin/trackday-idle-check"
NODE_ENV_FILE = "/run/trackday/node.env"
IDLE_SINCE_FILE = "/run/trackday/idle-since"
BUILDING_FILE = "/run/trackday/building"  # while the manager builds the trainer image
READY_FILE = "/var/lib/trackday/bootstrap.done"
SYSTEMD_DIR = "/etc/systemd/system"
READY_TIMEOUT_MINUTES = 45
BOOTSTRAP_RETRY_SECONDS = 30
# SAGEMAKER_DIR: the DeepRacer trainer bind-mounts it and holds the Docker socket: root's,
# never writable by other users, made at every boot by systemd-tmpfiles (/tmp is emptied).
TMPFILES_CONF = "/etc/tmpfiles.d/trackday.conf"
_USER_PATTERN = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_SSH_KEY_PATTERN = re.compile(
    r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com"
    r"|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\n]*)?"
)
_LABEL_KEY_PATTERN = re.compile(r"[a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?")
_LABEL_VALUE_PATTERN = re.compile(r"[A-Za-z0-9._:/=+-]{0,128}")
_IMAGE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}")

# Key Vault: vault names are 3-24 letters, digits and '-'; secret names letters, digits, '-'.
VAULT_SECRET_URL = re.compile(
    r"https://[a-z][a-z0-9-]{1,22}[a-z0-9]\.vault\.azure\.net/secrets/[0-9a-zA-Z-]{1,127}"
)
# An SSM parameter's ARN; infra/bootstrap/aws_store.py takes the region and name from it.
PARAMETER_ARN = re.compile(
    r"arn:aws(-[a-z]+)*:ssm:(?P<region>[a-z]{2}(-[a-z]+)+-\d):\d{12}"
    r":parameter(?P<name>(/[A-Za-z0-9_.-]{1,100}){2,10})"
)
_SECRET_PATTERNS = {
    "gcp": re.compile(r"projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/secrets/[A-Za-z0-9_-]{1,255}"),
    "azure": VAULT_SECRET_URL,
    "aws": PARAMETER_ARN,
}
_SECRET_FORMS = {
    "gcp": "a Secret Manager name (projects/<project>/secrets/<id>)",
    "azure": "a Key Vault secret URL (https://<vault>.vault.azure.net/secrets/<name>)",
    "aws": "an SSM parameter ARN (arn:aws:ssm:<region>:<account>:parameter/<path>/<name>)",
}
# Where the manager says it is done (with its host key): azure's secret in the same vault,
# aws's parameter next to the join parameter.
AZURE_READY_SECRET = "trackday-ready"


@dataclass(frozen=True)
class JoinStore:
    """Where the manager leaves the join token for the workers: a secret of the stack."""

    cloud: Cloud
    # GCP: the secret's resource name, projects/<project>/secrets/<id>; Azure: the Key Vault
    # secret's URL, https://<vault>.vault.azure.net/secrets/<name>; AWS: the SSM parameter's
    # ARN.
    secret: str

    def __post_init__(self) -> None:
        pattern = _SECRET_PATTERNS.get(self.cloud)
        if pattern is None:
            raise ValueError(f"no join store for cloud {self.cloud!r}")
        if not pattern.fullmatch(self.secret):
            raise ValueError(
                f"join store secret {self.secret!r} is not {_SECRET_FORMS[self.cloud]}"
            )

    @property
    def ready_secret(self) -> str:
        """Where the manager publishes "done" and its host key: azure's secret URL, aws's
        parameter ARN."""
        return f"{self.secret.rsplit('/', 1)[0]}/{AZURE_READY_SECRET}"


@dataclass(frozen=True)
class NodeService:
    """A systemd service the node runs besides Docker (the S3 gateway on the manager, the X
    server of infra/xorg.py on `every_node`), with its files.

    Everything in it goes into user data, so it must hold no secret. `setup` is run by the
    bootstrap before it enables the unit, after the store login (it may read a secret from
    the pool's join store: the gateway's keys).
    """

    unit_name: str
    unit: str
    files: Mapping[str, str] = field(default_factory=dict)
    every_node: bool = False
    setup: str = ""


@dataclass(frozen=True)
class NodeBootstrap:
    """Everything a node's user data depends on; all plain values, no secret."""

    role: Role
    cloud: Cloud
    ssh_user: str
    ssh_public_key: str
    gpu: bool = True
    labels: Mapping[str, str] = field(default_factory=dict)
    prepull_images: tuple[str, ...] = ()
    ttl_hours: float | None = None
    idle_minutes: int | None = None
    idle_gpu_percent: int = 10
    # Where the swarm's join token is left by the manager for the workers (join_store.py);
    # None: a node outside a swarm (a test's single node).
    join_store: JoinStore | None = None
    # Azure only: the node's user-assigned identity, which deallocates the VM at power-off.
    azure_identity_client_id: str | None = None
    services: tuple[NodeService, ...] = ()
    # A spot node watches for its interruption notice and stops its runs (bootstrap/spot.py).
    spot: bool = False

    def __post_init__(self) -> None:
        _check_choice("node role", self.role, Role)
        _check_choice("cloud", self.cloud, Cloud)
        if not _USER_PATTERN.fullmatch(self.ssh_user):
            raise ValueError(
                f"SSH user {self.ssh_user!r} is not a valid Linux user name: use lowercase"
                " letters, digits, '_' and '-', starting with a letter"
            )
        if not _SSH_KEY_PATTERN.fullmatch(self.ssh_public_key.strip()):
            raise ValueError(
                "SSH public key must be one line in OpenSSH format ('ssh-ed25519 AAAA...'),"
                f" got {self.ssh_public_key[:30]!r}"
            )
        node_labels(self.role, self.labels)
        for image in self.prepull_images:
            check_image_reference("pre-pull image", image)
        if self.ttl_hours is not None and not 0 < self.ttl_hours <= 24 * 30:
            raise ValueError(f"budget.ttlHours {self.ttl_hours!r} must be above 0 and at most 720")
        if self.idle_minutes is not None and not 5 <= self.idle_minutes <= 24 * 60:
            raise ValueError(
                f"budget idle minutes {self.idle_minutes!r} must be between 5 and 1440"
                " (a node needs a few minutes to start its first job)"
            )
        if not 1 <= self.idle_gpu_percent <= 100:
            raise ValueError(
                f"idle GPU threshold {self.idle_gpu_percent!r} must be a percentage from 1 to 100"
            )
        if self.cloud == "azure" and not self.azure_identity_client_id:
            raise ValueError(
                "azure nodes need azure_identity_client_id: a powered-off Azure VM still bills"
                " until it is deallocated, which the node's identity does at power-off"
            )
        if any(not s.every_node for s in self.services) and self.role != "manager":
            raise ValueError("node services (the S3 gateway) run on the manager only")
        if any(s.setup for s in self.services) and self.join_store is None:
            raise ValueError("a node service's setup reads the join store: the pool needs one")


def _check_choice(what: str, value: str, choices: object) -> None:
    allowed = get_args(choices)
    if value not in allowed:
        raise ValueError(f"{what} {value!r} is not one of {', '.join(allowed)}")


def check_image_reference(what: str, image: str) -> None:
    """Refuse anything but a plain image reference: it ends up in scripts and unit files."""
    if not _IMAGE_PATTERN.fullmatch(image):
        raise ValueError(
            f"{what} {image!r} is not an image reference like 'registry/name:tag'"
            " (no spaces or shell characters)"
        )


def node_labels(role: Role, extra: Mapping[str, str]) -> dict[str, str]:
    """The Swarm node labels of a node: its role label plus the stack's extra labels."""
    for key, value in extra.items():
        if key == ROLE_LABEL:
            raise ValueError(f"node label {ROLE_LABEL} is set from the node's role; remove it")
        if not _LABEL_KEY_PATTERN.fullmatch(key):
            raise ValueError(
                f"node label key {key!r} must be lowercase letters, digits, '.', '_' and '-'"
            )
        if not _LABEL_VALUE_PATTERN.fullmatch(value):
            raise ValueError(
                f"node label {key}={value!r}: values are letters, digits and ._:/=+- only"
            )
    return {ROLE_LABEL: ROLE_LABEL_VALUES[role], **extra}


def shell_script(purpose: str, body: str) -> str:
    """A bash script with the header every trackday node script shares."""
    return f"#!/bin/bash\n# {purpose}\n# Rendered by trackday (infra/).\nset -euo pipefail\n{body}"
