"""A stack's nodes as its swarm manager sees them, and the power-off time its nodes have left:
read over SSH with the stack's key, as every trackday command reaches the manager
(trackday/manager_ssh.py: the stack's key from memory, only the recorded host key accepted).

Read-only, one connection with a timeout per page load: `docker node inspect` of every node
(state, availability, role, and the GPUs each advertises to Swarm, counted as the placement
check counts them), and the manager's uptime, clock and idle-since file. The timers are the
ones infra/bootstrap/ installs: power-off `budget.ttlHours` after boot (OnBootSec), and
after `budget.idleMinutes` idle, counted from the time in /run/trackday/idle-since (the file
exists only while the node is idle; an open SSH session, this one too, counts as busy).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import paramiko

from contract.outputs import OutputsError, SwarmSite
from contract.swarm import ROLE_LABEL
from infra.bootstrap import IDLE_SINCE_FILE
from infra.workloads.run_target import node_gpus
from trackday.errors import ManagerError
from trackday.manager_ssh import load_host_key, load_key

TIMEOUT_S = 10.0
NODES_COMMAND = "docker node inspect $(docker node ls --quiet)"
# Uptime, the clock, then the idle-since time or "-": one round trip, nothing written.
HOST_COMMAND = "cat /proc/uptime; date +%s; cat {idle} 2>/dev/null || echo -"


@dataclass(frozen=True)
class Node:
    hostname: str
    role: str
    state: str  # ready | down | unknown | disconnected
    availability: str  # active | pause | drain
    gpus: int
    labels: dict[str, str]

    @property
    def trackday_role(self) -> str:
        return self.labels.get(ROLE_LABEL, "—")


@dataclass(frozen=True)
class ManagerView:
    address: str
    nodes: list[Node]
    uptime_s: float
    idle_s: float | None  # how long the manager has been idle; None: busy


def has_manager(outputs: dict[str, Any] | None) -> bool:
    return bool(outputs and SwarmSite.value(outputs, "manager_address"))


def _node(found: dict) -> Node:
    spec, status = found.get("Spec", {}), found.get("Status", {})
    return Node(
        hostname=found.get("Description", {}).get("Hostname", found.get("ID", "?")),
        role=spec.get("Role", "?"),
        state=status.get("State", "?"),
        availability=spec.get("Availability", "?"),
        gpus=node_gpus(found),
        labels=spec.get("Labels") or {},
    )


def _run(client: paramiko.SSHClient, command: str, timeout: float) -> str:
    _, stdout, stderr = client.exec_command(command, timeout=timeout)
    out = stdout.read().decode("utf-8", "replace")
    if stdout.channel.recv_exit_status() != 0:
        raise ManagerError(f"`{command}` failed: {stderr.read().decode(errors='replace')[:300]}")
    return out


def _connect(site: SwarmSite, timeout: float) -> paramiko.SSHClient:
    if not site.manager_host_key:
        raise ManagerError(
            f"the stack records no {SwarmSite.key('manager_host_key')}: run `pulumi up` for it"
        )
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    host = load_host_key(site.manager_host_key)
    name = site.manager_address
    name = name if site.ssh_port == 22 else f"[{name}]:{site.ssh_port}"
    client.get_host_keys().add(name, host.get_name(), host)
    client.connect(
        site.manager_address,
        port=site.ssh_port,
        username=site.ssh_user,
        pkey=load_key(site.ssh_private_key),
        look_for_keys=False,
        allow_agent=False,
        timeout=timeout,
        banner_timeout=timeout,
        auth_timeout=timeout,
    )
    return client


def read_manager(
    outputs: dict[str, Any], timeout: float = TIMEOUT_S, idle_file: str = IDLE_SINCE_FILE
) -> ManagerView:
    """The manager's view; ManagerError saying why when it cannot be reached or read."""
    try:
        site = SwarmSite.model_validate(outputs)
    except (OutputsError, ValueError) as error:
        raise ManagerError(
            f"the stack's outputs do not say how to reach its manager: {error}"
        ) from None
    try:
        client = _connect(site, timeout)
    except (paramiko.SSHException, OSError) as error:  # refused, timed out, host key
        raise ManagerError(
            f"cannot reach the manager {site.ssh_user}@{site.manager_address}:{site.ssh_port} "
            f"over SSH: {error or type(error).__name__}"
        ) from None
    try:
        nodes = json.loads(_run(client, NODES_COMMAND, timeout))
        host = _run(client, HOST_COMMAND.format(idle=idle_file), timeout)
        uptime, now, idle = host.split("\n")[:3]
    except (paramiko.SSHException, OSError, ValueError) as error:
        raise ManagerError(f"the manager {site.manager_address} answered oddly: {error}") from None
    finally:
        client.close()
    idle_s = None if idle.strip() == "-" else max(0.0, float(now) - float(idle))
    return ManagerView(
        site.manager_address,
        sorted((_node(n) for n in nodes), key=lambda n: (n.role != "manager", n.hostname)),
        float(uptime.split()[0]),
        idle_s,
    )


def power_off_left(
    view: ManagerView, ttl_hours: float | None, idle_minutes: int | None
) -> dict[str, float | None]:
    """Seconds until each power-off timer fires on the manager (None: no such timer, or the
    node is busy so the idle one is not counting)."""
    ttl = None if ttl_hours is None else max(0.0, ttl_hours * 3600 - view.uptime_s)
    idle = None
    if idle_minutes is not None and view.idle_s is not None:
        idle = max(0.0, idle_minutes * 60 - view.idle_s)
    return {"ttl": ttl, "idle": idle}
