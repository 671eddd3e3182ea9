"""A node's cloud-config document: its files, systemd units and the first-boot script that
puts Docker, the GPU steps, the swarm and the node services together."""

from __future__ import annotations

import shlex

import yaml

from infra.bootstrap.gpu import gpu_section
from infra.bootstrap.join_store import (
    LABEL_SCRIPT,
    join_section,
    label_args,
    label_workers_script,
    publish_section,
    ready_section,
    store_auth,
)
from infra.bootstrap.power import idle_script, poweroff_script
from infra.bootstrap.spec import (
    BOOTSTRAP_RETRY_SECONDS,
    BOOTSTRAP_SCRIPT,
    IDLE_SCRIPT,
    NODE_ENV_FILE,
    NODE_ENV_SCRIPT,
    POWEROFF_SCRIPT,
    READY_FILE,
    READY_TIMEOUT_MINUTES,
    SWARM_PORT,
    SYSTEMD_DIR,
    TMPFILES_CONF,
    NodeBootstrap,
    shell_script,
)
from infra.bootstrap.spot import RESUME_UNIT, WATCH_UNIT, spot_files
from infra.bootstrap.trainer_build import BUILD_SCRIPT, build_script
from training.deepracer.services import SAGEMAKER_DIR


def user_data(node: NodeBootstrap) -> str:
    """The node's cloud-config document (`#cloud-config` first, as cloud-init requires)."""
    files = [
        _file(TMPFILES_CONF, f"d {SAGEMAKER_DIR} 0755 root root -\n"),
        _file(NODE_ENV_SCRIPT, _node_env_script(), "0755"),
        _file(f"{SYSTEMD_DIR}/trackday-node-env.service", _NODE_ENV_UNIT),
        _file(BOOTSTRAP_SCRIPT, _bootstrap_script(node), "0755"),
        _file(f"{SYSTEMD_DIR}/trackday-bootstrap.service", _BOOTSTRAP_UNIT),
        _file(POWEROFF_SCRIPT, poweroff_script(node), "0755"),
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
        files.append(_file(IDLE_SCRIPT, idle_script(node), "0755"))
        files += _timer_files(
            "trackday-idle",
            f"power the node off after {node.idle_minutes} idle minutes",
            "OnBootSec=1min\nOnUnitActiveSec=1min",
            IDLE_SCRIPT,
        )
        units.append("trackday-idle.timer")
    if node.spot:
        files += [_file(path, content, mode) for path, content, mode in spot_files(node)]
        units += [WATCH_UNIT, RESUME_UNIT]
    for service in node.services:
        files.append(_file(f"{SYSTEMD_DIR}/{service.unit_name}", service.unit))
        files += [_file(path, content) for path, content in service.files.items()]
    if node.join_store is not None and node.role == "manager":
        labeller = label_workers_script(node.labels)
        files.append(_file(LABEL_SCRIPT, labeller, "0755"))
        files += _timer_files(
            "trackday-label-workers",
            "label the workers that joined the swarm",
            "OnBootSec=1min\nOnUnitActiveSec=30s",
            LABEL_SCRIPT,
        )
        units.append("trackday-label-workers.timer")
    if node.join_store is not None and node.role == "manager":
        script = build_script(node.join_store, node.azure_identity_client_id)
        files.append(_file(BUILD_SCRIPT, script, "0755"))
        files += _timer_files(
            "trackday-trainer-build",
            "build the trainer image the deployer asked for",
            "OnBootSec=2min\nOnUnitActiveSec=1min",
            BUILD_SCRIPT,
        )
        units.append("trackday-trainer-build.timer")
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
            + gpu_section()
            + 'else\n  echo "trackday: no NVIDIA device: Docker keeps its defaults" >&2\nfi\n'
        )
    if node.role == "manager":
        parts.append(
            _MANAGER_SECTION.format(port=SWARM_PORT, label_args=label_args(node.role, node.labels))
        )
    if node.join_store is not None:
        store = node.join_store
        if node.role == "manager":
            parts += [store_auth(store, node.azure_identity_client_id), publish_section(store)]
        else:
            parts += [store_auth(store, node.azure_identity_client_id), join_section(store)]
    for service in node.services:
        parts.append(f"{service.setup}systemctl enable --now {shlex.quote(service.unit_name)}\n")
    for image in node.prepull_images:
        quoted = shlex.quote(image)
        parts.append(f'docker pull {quoted} || echo "trackday: could not pre-pull {image}" >&2\n')
    if node.join_store is not None and node.role == "manager":
        parts.append(ready_section(node.join_store))
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
  # cloud-init's package_update may have failed (a mirror down at first boot): without
  # package lists apt cannot locate docker.io, so refresh them once and try again.
  apt_get install -y -q docker.io || {{ apt_get update -q && apt_get install -y -q docker.io; }}
fi
systemctl enable --now docker
usermod -aG docker {user}
"""
_MANAGER_SECTION = """\
if [ "$(docker info --format '{{{{.Swarm.LocalNodeState}}}}')" != active ]; then
  docker swarm init --advertise-addr "$TRACKDAY_PRIVATE_IP" \\
    --listen-addr "$TRACKDAY_PRIVATE_IP:{port}"
fi
docker node update {label_args} "$(docker info --format '{{{{.Swarm.NodeID}}}}')"
"""
