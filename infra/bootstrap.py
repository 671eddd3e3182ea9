"""Node bootstrap: the cloud-init user data of a GPU node, and the scripts run on it over SSH.

Pure functions of plain values, so that Pulumi can call them inside `Output.all(...).apply()`
and tests can check what they render without Pulumi (every document passes
`cloud-init schema`, every script `shellcheck`).

What a node does at first boot, retried until it is done and again at each boot until then
(the Azure NVIDIA driver extension may reboot it half-way, apt may be locked): Docker with
the NVIDIA runtime as the default runtime, in the mode that honours Swarm's GPU assignment
(checked with a container, or the bootstrap fails), and the GPUs advertised to Swarm; on the
manager, `docker swarm init` and its `trackday.role=trainer` label. Every boot,
systemd-tmpfiles makes /tmp/sagemaker (the DeepRacer trainer's bind mount) root's before
anyone else can. A power-off timer after `budget.ttlHours`, and another after the node has
been idle (never while an SSH session, such as `pulumi up` or `trackday`, is open), stop a
forgotten stack from billing.

User data holds no secret: any process on the node can read it from the metadata service,
and clouds keep it in plain text. The Swarm join token therefore reaches a worker on the
standard input of `join_script`, run over SSH by pulumi-command, and never appears on a
command line; the manager then labels the worker (`label_script`): a worker cannot claim
a role for itself.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

import yaml

from contract.swarm import GPU_RESOURCE, ROLE_LABEL, ROLE_LABEL_VALUES, WORKLOAD_LABEL
from training.deepracer.services import SAGEMAKER_DIR

Role = Literal["manager", "worker"]
Cloud = Literal["aws", "azure", "gcp"]

SWARM_PORT = 2377

BOOTSTRAP_SCRIPT = "/usr/local/sbin/trackday-bootstrap"
NODE_ENV_SCRIPT = "/usr/local/sbin/trackday-node-env"
POWEROFF_SCRIPT = "/usr/local/sbin/trackday-poweroff"
IDLE_SCRIPT = "/usr/local/sbin/trackday-idle-check"
NODE_ENV_FILE = "/run/trackday/node.env"
IDLE_SINCE_FILE = "/run/trackday/idle-since"
READY_FILE = "/var/lib/trackday/bootstrap.done"
SYSTEMD_DIR = "/etc/systemd/system"
READY_TIMEOUT_MINUTES = 45
GPU_WAIT_MINUTES = 20
BOOTSTRAP_RETRY_SECONDS = 30
REPORT_AFTER_FAILURES = 2  # failed bootstrap attempts before a waiting deploy reports them
# SAGEMAKER_DIR: the DeepRacer trainer bind-mounts it and holds the Docker socket: root's,
# never writable by other users, made at every boot by systemd-tmpfiles (/tmp is emptied).
TMPFILES_CONF = "/etc/tmpfiles.d/trackday.conf"
# From NVIDIA container toolkit 1.18.0 the runtime defaults to "jit-cdi" mode, which ignores
# the GPU Swarm assigns (DOCKER_RESOURCE_GPU) until 1.19.0 (NVIDIA/nvidia-container-toolkit
# issue 1599); "legacy" mode honours it on every version. `nvidia-ctk config --set` is in
# NVIDIA's install guide from 1.14 (rootless mode); the container check below is the proof.
MIN_TOOLKIT_VERSION = "1.14.0"
GPU_PROBE_IMAGE = "ubuntu:22.04"

_USER_PATTERN = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_SSH_KEY_PATTERN = re.compile(
    r"(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com"
    r"|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\n]*)?"
)
_LABEL_KEY_PATTERN = re.compile(r"[a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?")
_LABEL_VALUE_PATTERN = re.compile(r"[A-Za-z0-9._:/=+-]{0,128}")
_IMAGE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}")
_NODE_ID_PATTERN = re.compile(r"[a-z0-9]{25}")
_ADDRESS_PATTERN = re.compile(r"[A-Za-z0-9.:-]{1,253}")


@dataclass(frozen=True)
class NodeService:
    """A systemd service the node runs besides Docker (the S3 gateway on the manager, the X
    server of infra/xorg.py on `every_node`), with its files.

    Everything in it goes into user data, so it must hold no secret.
    """

    unit_name: str
    unit: str
    files: Mapping[str, str] = field(default_factory=dict)
    every_node: bool = False


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
    # Azure only: the node's user-assigned identity, which deallocates the VM at power-off.
    azure_identity_client_id: str | None = None
    services: tuple[NodeService, ...] = ()

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


def remote_command(script: str) -> str:
    """The command line pulumi-command runs over SSH: the script, as root, its stdin passed on."""
    return f"sudo bash -c {shlex.quote(script)}"


def user_data(node: NodeBootstrap) -> str:
    """The node's cloud-config document (`#cloud-config` first, as cloud-init requires)."""
    files = [
        _file(TMPFILES_CONF, f"d {SAGEMAKER_DIR} 0755 root root -\n"),
        _file(NODE_ENV_SCRIPT, _node_env_script(), "0755"),
        _file(f"{SYSTEMD_DIR}/trackday-node-env.service", _NODE_ENV_UNIT),
        _file(BOOTSTRAP_SCRIPT, _bootstrap_script(node), "0755"),
        _file(f"{SYSTEMD_DIR}/trackday-bootstrap.service", _BOOTSTRAP_UNIT),
        _file(POWEROFF_SCRIPT, _poweroff_script(node), "0755"),
    ]
    units = ["trackday-node-env.service", "trackday-bootstrap.service"]
    if node.ttl_hours is not None:
        minutes = max(1, round(node.ttl_hours * 60))
        files += _timer_files(
            "trackday-ttl",
            f"power the node off {node.ttl_hours:g} h after boot (budget.ttlHours)",
            f"OnBootSec={minutes}min",
            POWEROFF_SCRIPT,
        )
        units.append("trackday-ttl.timer")
    if node.idle_minutes is not None:
        files.append(_file(IDLE_SCRIPT, _idle_script(node), "0755"))
        files += _timer_files(
            "trackday-idle",
            f"power the node off after {node.idle_minutes} idle minutes",
            "OnBootSec=1min\nOnUnitActiveSec=1min",
            IDLE_SCRIPT,
        )
        units.append("trackday-idle.timer")
    for service in node.services:
        files.append(_file(f"{SYSTEMD_DIR}/{service.unit_name}", service.unit))
        files += [_file(path, content) for path, content in service.files.items()]
    document = {
        "users": [
            "default",
            {
                "name": node.ssh_user,
                "shell": "/bin/bash",
                "lock_passwd": True,
                "sudo": "ALL=(ALL) NOPASSWD:ALL",
                "ssh_authorized_keys": [node.ssh_public_key.strip()],
            },
        ],
        "ssh_pwauth": False,
        "disable_root": True,
        "package_update": True,
        "packages": ["ca-certificates", "curl", "gnupg", "jq"],
        "write_files": files,
        "runcmd": [
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "--now", "--no-block", *units],
        ],
    }
    return "#cloud-config\n" + yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=1000)


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (scripts, units) as readable literal blocks."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _file(path: str, content: str, permissions: str = "0644") -> dict[str, str]:
    return {"path": path, "content": content, "owner": "root:root", "permissions": permissions}


def _timer_files(name: str, purpose: str, schedule: str, command: str) -> list[dict[str, str]]:
    timer = f"""\
[Unit]
Description=trackday: {purpose}

[Timer]
{schedule}
AccuracySec=30s

[Install]
WantedBy=timers.target
"""
    service = f"""\
[Unit]
Description=trackday: {purpose}

[Service]
Type=oneshot
ExecStart={command}
"""
    return [
        _file(f"{SYSTEMD_DIR}/{name}.timer", timer),
        _file(f"{SYSTEMD_DIR}/{name}.service", service),
    ]


_NODE_ENV_UNIT = f"""\
[Unit]
Description=trackday: find the node's private address (Swarm and the S3 gateway listen there)
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={NODE_ENV_SCRIPT}

[Install]
WantedBy=multi-user.target
"""

# Not After=cloud-final.service: Ubuntu orders cloud-final after multi-user.target, which wants
# this unit, and systemd broke that cycle at the next boot by dropping this unit's start: a node
# rebooted half-way never finished. At first boot runcmd starts it after the packages are in.
_BOOTSTRAP_UNIT = f"""\
[Unit]
Description=trackday: Docker with the NVIDIA runtime, Swarm and labels (retried until done)
After=network-online.target trackday-node-env.service
Wants=network-online.target
Requires=trackday-node-env.service
ConditionPathExists=!{READY_FILE}
StartLimitIntervalSec=0

[Service]
Type=oneshot
RemainAfterExit=yes
EnvironmentFile={NODE_ENV_FILE}
ExecStart={BOOTSTRAP_SCRIPT}
TimeoutStartSec={READY_TIMEOUT_MINUTES}min
Restart=on-failure
RestartSec={BOOTSTRAP_RETRY_SECONDS}

[Install]
WantedBy=multi-user.target
"""


def _node_env_script() -> str:
    return shell_script(
        "Writes the node's private IPv4 address (the one of the default route's interface).",
        f"""\
device=$(ip -4 route show default | awk '{{print $5; exit}}')
address=$(ip -4 -o addr show dev "$device" | awk '{{split($4, a, "/"); print a[1]; exit}}')
if [ -z "$address" ]; then
  echo "trackday: no IPv4 address on $device" >&2
  exit 1
fi
mkdir -p "$(dirname {NODE_ENV_FILE})"
printf 'TRACKDAY_PRIVATE_IP=%s\\n' "$address" > {NODE_ENV_FILE}
""",
    )


def _bootstrap_script(node: NodeBootstrap) -> str:
    parts = [_SAGEMAKER_SECTION, _DOCKER_SECTION.format(user=node.ssh_user)]
    if node.gpu:
        # Only a machine with an NVIDIA device (PCI vendor 0x10de) waits for its driver; one
        # without (a CPU machine of the same image, the node tests) keeps Docker's defaults.
        parts.append(
            "if grep -qs 0x10de /sys/bus/pci/devices/*/vendor; then\n"
            + _GPU_SECTION.format(
                minutes=GPU_WAIT_MINUTES,
                gpu_kind=GPU_RESOURCE,
                min_toolkit=MIN_TOOLKIT_VERSION,
                probe=GPU_PROBE_IMAGE,
            )
            + 'else\n  echo "trackday: no NVIDIA device: Docker keeps its defaults" >&2\nfi\n'
        )
    if node.role == "manager":
        parts.append(_MANAGER_SECTION.format(port=SWARM_PORT, label_args=_label_args(node)))
    for service in node.services:
        parts.append(f"systemctl enable --now {shlex.quote(service.unit_name)}\n")
    for image in node.prepull_images:
        quoted = shlex.quote(image)
        parts.append(f'docker pull {quoted} || echo "trackday: could not pre-pull {image}" >&2\n')
    parts.append(f'mkdir -p "$(dirname {READY_FILE})"\ntouch {READY_FILE}\n')
    return shell_script(
        f"First-boot set-up of a trackday {node.role} node on {node.cloud}.", "".join(parts)
    )


_SAGEMAKER_SECTION = f"""\
# systemd-tmpfiles makes it at every boot; this first boot wrote the entry after that ran.
systemd-tmpfiles --create {TMPFILES_CONF}
if [ "$(stat -c '%U:%G %a %F' {SAGEMAKER_DIR})" != "root:root 755 directory" ]; then
  echo "trackday: {SAGEMAKER_DIR} is not root's own directory (mode 755):" \\
    "$(stat -c '%U:%G %a %F' {SAGEMAKER_DIR}); remove it and reboot" >&2
  exit 1
fi
"""

_DOCKER_SECTION = """\
export DEBIAN_FRONTEND=noninteractive
# Images often run unattended-upgrades at first boot: wait for its apt lock.
apt_get() {{ apt-get -o DPkg::Lock::Timeout=600 "$@"; }}
# A reboot half-way through the install leaves dpkg interrupted, and apt refuses to go on.
if [ -n "$(ls -A /var/lib/dpkg/updates)" ]; then
  dpkg --configure -a
fi
if ! command -v docker >/dev/null 2>&1; then
  apt_get install -y -q docker.io
fi
systemctl enable --now docker
usermod -aG docker {user}
"""

# The driver comes with the image (AWS Deep Learning AMI, GCP accelerator images) or the
# Azure NVIDIA GPU driver extension, which may still be installing: wait for it.
_GPU_SECTION = """\
for _ in $(seq {minutes}); do
  nvidia-smi >/dev/null 2>&1 && break
  sleep 60
done
if ! nvidia-smi >/dev/null; then
  echo "trackday: no working NVIDIA driver after {minutes} min" >&2
  exit 1
fi
if ! command -v nvidia-ctk >/dev/null 2>&1; then
  keyring=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
  repository=https://nvidia.github.io/libnvidia-container
  curl -fsSL "$repository/gpgkey" | gpg --dearmor --yes -o "$keyring"
  curl -fsSL "$repository/stable/deb/nvidia-container-toolkit.list" \\
    | sed "s#deb https://#deb [signed-by=$keyring] https://#" \\
    > /etc/apt/sources.list.d/nvidia-container-toolkit.list
  apt_get update -q
  apt_get install -y -q nvidia-container-toolkit
fi
toolkit=$(nvidia-ctk --version | sed -n 's/.*version \\([0-9][0-9.]*\\).*/\\1/p' | head -n 1)
if [ -z "$toolkit" ] || ! printf '%s\\n' {min_toolkit} "$toolkit" | sort -V -C; then
  echo "trackday: NVIDIA container toolkit ${{toolkit:-(unknown)}} is older than" \\
    "{min_toolkit}; upgrade nvidia-container-toolkit" >&2
  exit 1
fi
nvidia-ctk runtime configure --runtime=docker --set-as-default
# Legacy mode: the runtime honours the GPU Swarm assigned to a task (jit-cdi mode, the
# default from 1.18.0, ignores it before 1.19.0).
nvidia-ctk config --in-place --set nvidia-container-runtime.mode=legacy
# Swarm services ask for GPUs as the generic resource {gpu_kind}; the runtime then exposes
# the GPU Swarm assigned to the task (DOCKER_RESOURCE_{gpu_kind}).
gpus=$(nvidia-smi --query-gpu=uuid --format=csv,noheader | paste -sd, -)
daemon=/etc/docker/daemon.json
jq --arg gpus "$gpus" \\
  '."node-generic-resources" = ($gpus | split(",") | map("{gpu_kind}=" + .))' \\
  "$daemon" > "$daemon.new"
mv "$daemon.new" "$daemon"
runtime_config=/etc/nvidia-container-runtime/config.toml
if grep -q '^#\\?swarm-resource' "$runtime_config"; then
  sed -i 's/^#\\?swarm-resource.*/swarm-resource = "DOCKER_RESOURCE_{gpu_kind}"/' "$runtime_config"
else
  sed -i '1i swarm-resource = "DOCKER_RESOURCE_{gpu_kind}"' "$runtime_config"
fi
systemctl restart docker
# The check: a container given the first GPU the way Swarm gives it sees that GPU only.
first=${{gpus%%,*}}
seen=$(docker run --rm -e DOCKER_RESOURCE_{gpu_kind}="$first" \\
  -e NVIDIA_DRIVER_CAPABILITIES=utility {probe} \\
  nvidia-smi --query-gpu=uuid --format=csv,noheader 2>&1) || true
if [ "$seen" != "$first" ]; then
  echo "trackday: the NVIDIA runtime ignores Swarm's GPU assignment: a container given" \\
    "$first saw: $seen (toolkit $toolkit, $runtime_config)" >&2
  exit 1
fi
"""

_MANAGER_SECTION = """\
if [ "$(docker info --format '{{{{.Swarm.LocalNodeState}}}}')" != active ]; then
  docker swarm init --advertise-addr "$TRACKDAY_PRIVATE_IP" \\
    --listen-addr "$TRACKDAY_PRIVATE_IP:{port}"
fi
docker node update {label_args} "$(docker info --format '{{{{.Swarm.NodeID}}}}')"
"""


def _poweroff_script(node: NodeBootstrap) -> str:
    if node.cloud != "azure":
        return shell_script(
            f"Powers the node off; a stopped {node.cloud} instance no longer bills for compute.",
            'logger -t trackday "powering off" || true\nsystemctl poweroff\n',
        )
    return shell_script(
        "Deallocates this Azure VM (a VM only powered off still bills), else powers it off.",
        f"""\
imds=http://169.254.169.254/metadata
arm=https://management.azure.com
client_id={shlex.quote(node.azure_identity_client_id or "")}
logger -t trackday "deallocating this VM" || true
deallocate() {{
  local vm token
  vm=$(curl -fsS -H Metadata:true \\
    "$imds/instance/compute/resourceId?api-version=2021-02-01&format=text")
  token=$(curl -fsS -H Metadata:true \\
    "$imds/identity/oauth2/token?api-version=2018-02-01&resource=$arm/&client_id=$client_id" \\
    | jq -r .access_token)
  curl -fsS -X POST -H "Authorization: Bearer $token" -H "Content-Length: 0" \\
    "$arm$vm/deallocate?api-version=2024-07-01"
}}
if ! deallocate; then
  logger -t trackday "deallocation failed: powering off" || true
  systemctl poweroff
fi
""",
    )


def _idle_script(node: NodeBootstrap) -> str:
    return shell_script(
        f"Powers the node off once it has been idle for {node.idle_minutes} minutes: no running"
        f" container labelled {WORKLOAD_LABEL}, no SSH session, every GPU below"
        f" {node.idle_gpu_percent}%.",
        f"""\
busy() {{
  local running utilisation
  [ -f {READY_FILE} ] || return 0
  running=$(docker ps --quiet --filter label={WORKLOAD_LABEL}) || return 0
  [ -n "$running" ] && return 0
  # Someone is deploying or running trackday here: both work over SSH.
  [ -n "$(ss -Htn state established '( sport = :22 )')" ] && return 0
  if command -v nvidia-smi >/dev/null 2>&1; then
    utilisation=$(nvidia-smi --query-gpu=utilization.gpu --format=csv,noheader,nounits \\
      | sort -n | tail -n 1) || return 0
    [ "${{utilisation:-0}}" -ge {node.idle_gpu_percent} ] && return 0
  fi
  return 1
}}
if busy; then
  rm -f {IDLE_SINCE_FILE}
  exit 0
fi
now=$(date +%s)
[ -f {IDLE_SINCE_FILE} ] || echo "$now" > {IDLE_SINCE_FILE}
since=$(cat {IDLE_SINCE_FILE})
if [ $(( (now - since) / 60 )) -ge {node.idle_minutes} ]; then
  logger -t trackday "idle for {node.idle_minutes} minutes" || true
  exec {POWEROFF_SCRIPT}
fi
""",
    )


# The bootstrap retries itself (Restart=on-failure, every BOOTSTRAP_RETRY_SECONDS): a deploy
# waiting on it says so, with its log, once it has failed REPORT_AFTER_FAILURES times in a row,
# instead of waiting out the whole timeout while a broken node keeps retrying.
_WAIT_READY = f"""\
for _ in $(seq {READY_TIMEOUT_MINUTES * 12}); do
  [ -f {READY_FILE} ] && break
  restarts=$(systemctl show --property NRestarts --value trackday-bootstrap.service || echo 0)
  if systemctl is-failed --quiet trackday-bootstrap.service ||
    [ "${{restarts:-0}}" -ge {REPORT_AFTER_FAILURES} ]; then
    echo "trackday: node bootstrap failed:" >&2
    journalctl --no-pager --lines 40 --unit trackday-bootstrap >&2 || true
    exit 1
  fi
  sleep 5
done
[ -f {READY_FILE} ] || {{
  echo "trackday: node bootstrap not done after {READY_TIMEOUT_MINUTES} min:" \\
    "see journalctl -u trackday-bootstrap" >&2
  exit 1
}}
"""


def join_token_script() -> str:
    """Run on the manager over SSH: prints the worker join token (mark its stdout secret)."""
    return shell_script(
        "Prints the Swarm worker join token once the manager's bootstrap is done.",
        _WAIT_READY + "docker swarm join-token --quiet worker\n",
    )


def join_script(manager_address: str) -> str:
    """Run on a worker over SSH, the join token on stdin: joins the swarm, prints the node ID.

    The token goes from stdin through jq into the Engine API, so it is never an argument
    of any process (visible to every user in `ps`).
    """
    if not _ADDRESS_PATTERN.fullmatch(manager_address):
        raise ValueError(f"manager address {manager_address!r} is not a host name or IP address")
    return shell_script(
        "Joins this node to the trackday swarm as a worker; the join token comes on stdin.",
        _WAIT_READY
        + f"""\
# shellcheck source=/dev/null
. {NODE_ENV_FILE}
if [ "$(docker info --format '{{{{.Swarm.LocalNodeState}}}}')" != active ]; then
  jq --raw-input --arg manager {shlex.quote(f"{manager_address}:{SWARM_PORT}")} \\
    --arg address "$TRACKDAY_PRIVATE_IP" \\
    '{{JoinToken: ., RemoteAddrs: [$manager], AdvertiseAddr: $address,
      ListenAddr: ($address + ":{SWARM_PORT}")}}' \\
    | curl -fsS --unix-socket /var/run/docker.sock -H 'Content-Type: application/json' \\
      --data-binary @- http://localhost/swarm/join >&2
fi
docker info --format '{{{{.Swarm.NodeID}}}}'
""",
    )


def label_script(node_id: str, node: NodeBootstrap) -> str:
    """Run on the manager over SSH: gives a joined worker its placement labels.

    `node_id` is what `join_script` printed on the worker.
    """
    node_id = node_id.strip()
    if not _NODE_ID_PATTERN.fullmatch(node_id):
        raise ValueError(f"Swarm node ID {node_id!r} is not 25 lowercase letters and digits")
    return shell_script(
        "Labels a Swarm node for placement.",
        f"docker node update {_label_args(node)} {node_id}\n",
    )


def _label_args(node: NodeBootstrap) -> str:
    return " ".join(
        f"--label-add {shlex.quote(f'{key}={value}')}"
        for key, value in node_labels(node.role, node.labels).items()
    )
