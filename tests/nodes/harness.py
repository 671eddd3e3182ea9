"""Cloud nodes on this machine: Ubuntu containers with systemd as PID 1, on a network of their own.

Each node boots the image the clouds boot (Ubuntu noble, made with debootstrap, see
node.Dockerfile) with real systemd, cloud-init (NoCloud: the harness copies the user data in as
the node's seed before its first boot), sshd and dockerd. The nodes are privileged containers
(systemd and dockerd need to mount and manage cgroups) with their Docker storage on a volume of
their own, never the host's. Their network is internal: a node reaches the other nodes, the
stand-ins the test puts on it and the host, nothing else. No GPU is passed in, so the nodes take
the bootstrap's path for a machine without an NVIDIA device.

`Cluster` is the fixture's handle: nodes up, a node's log, commands on a node (as root through
`docker exec`, or over SSH as trackday's own commands log in), nodes down.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from infra.bootstrap import READY_FILE
from tests.nodes.render import SshKey

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = Path(__file__).with_name("node.Dockerfile")
BASE_IMAGE = "trackday-base:noble"
TEST_LABEL = "trackday.test=nodes"
BOOT_TIMEOUT_S = 900
SSH_TIMEOUT_S = 600
# `--privileged` less CAP_SYS_RESOURCE, which this machine's kernel withholds from dockerd
# (runc then fails "unable to apply caps"); node-init makes /sys and the cgroups writable.
NODE_PRIVILEGES = (
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE", "--cgroupns", "private",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined", "--device-cgroup-rule", "a *:* rwm",
)  # fmt: skip


def docker(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the docker CLI; with `check`, a failure fails the test with docker's message."""
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {shlex.join(args[:3])} failed: {result.stderr[-2000:]}")
    return result


def wait_for(
    what: str, condition: Callable[[], bool], timeout: float, log: Callable[[], str]
) -> float:
    """Poll `condition` until it holds; the seconds it took. On timeout, fail showing `log()`."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"{what}: not after {timeout:.0f} s\n{log()}")
        time.sleep(1)
    return time.monotonic() - start


def node_image(log: Path) -> str:
    """The node image, built once per version of its files (the engine keeps it): the noble
    base (scripts/base-image), then node.Dockerfile."""
    content = b"".join(p.read_bytes() for p in (DOCKERFILE, DOCKERFILE.with_name("node-init")))
    image = f"trackday-node:noble-{hashlib.sha256(content).hexdigest()[:12]}"
    if docker("image", "inspect", image, check=False).returncode == 0:
        return image
    with open(log, "wb") as out:
        for argv in (
            [str(ROOT / "scripts" / "base-image"), "noble"],
            ["docker", "build", "--network", "host", "--file", str(DOCKERFILE),
             "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "--tag", image, str(DOCKERFILE.parent)],
        ):  # fmt: skip
            if subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, timeout=1800).returncode:
                pytest.fail(f"{argv[0]} failed, log {log}:\n{log.read_text()[-3000:]}")
    return image


@dataclass
class Node:
    """One booted node: its container, its address on the test network, its login."""

    key: str
    container: str
    address: str
    key_file: Path
    known_hosts: Path
    started: float = field(default_factory=time.monotonic)

    def root(self, script: str, check: bool = True, timeout: float = 120) -> str:
        """Run a shell script as root on the node (the test's own look inside, not an SSH login)."""
        result = docker("exec", self.container, "bash", "-c", script, check=check, timeout=timeout)
        return result.stdout

    def ssh(self, command: str, stdin: str | None = None, timeout: float = SSH_TIMEOUT_S):
        """Run `command` over SSH as the pool's user (the line as given)."""
        argv = [
            "ssh", "-i", str(self.key_file), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
            "-o", f"UserKnownHostsFile={self.known_hosts}",
            "-o", "StrictHostKeyChecking=accept-new", f"trackday@{self.address}", command,
        ]  # fmt: skip
        return subprocess.run(
            argv, input=stdin or "", capture_output=True, text=True, timeout=timeout, check=False
        )

    def load_image(self, image: str) -> None:
        """Copy an image of the host's engine into the node's (no registry is reachable)."""
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        load = subprocess.run(
            ["docker", "exec", "-i", self.container, "docker", "load"],
            stdin=save.stdout, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if save.wait() != 0 or load.returncode != 0:
            raise AssertionError(f"loading {image} into {self.key} failed: {load.stderr}")

    def power_off(self) -> None:
        """Shut the node down as a cloud's power-off does (systemd stops everything, then the
        machine is gone); its disks stay."""
        docker("stop", "--time", "120", self.container, timeout=180)

    def power_on(self) -> None:
        docker("start", self.container)

    def running(self) -> bool:
        state = docker("inspect", "--format", "{{.State.Running}}", self.container, check=False)
        return state.stdout.strip() == "true"

    def has(self, path: str) -> bool:
        return docker("exec", self.container, "test", "-e", path, check=False).returncode == 0

    def log(self) -> str:
        """The node's boot log: cloud-init's output and the trackday units' journal."""
        if not self.running():
            return docker("logs", "--tail", "200", self.container, check=False).stdout
        return self.root(
            "tail -n 60 /var/log/cloud-init-output.log; systemctl --failed --no-pager;"
            " journalctl --no-pager -n 150 -u 'trackday-*' -u cloud-final -u docker",
            check=False,
        )

    def wait_bootstrapped(self) -> float:
        """Seconds from this node's first boot to bootstrap.done; fails early if the unit failed."""

        def done() -> bool:
            if self.has(READY_FILE):
                return True
            failed = docker("exec", self.container, "systemctl", "is-failed", "--quiet",
                            "trackday-bootstrap.service", check=False)  # fmt: skip
            if failed.returncode == 0:
                pytest.fail(f"{self.key}: trackday-bootstrap failed\n{self.log()}")
            return False

        wait_for(f"{self.key}: {READY_FILE}", done, BOOT_TIMEOUT_S, self.log)
        return time.monotonic() - self.started


@dataclass
class Cluster:
    """Nodes on one internal Docker network of the test's own."""

    name: str
    image: str
    subnet: ipaddress.IPv4Network
    ssh_key: SshKey
    mtu: int = 1500
    nodes: dict[str, Node] = field(default_factory=dict)
    stand_ins: list[str] = field(default_factory=list)
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="trackday-nodes-")))

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address + 1)

    def create_network(self) -> None:
        docker(
            "network", "create", "--internal", "--label", TEST_LABEL,
            "--subnet", str(self.subnet), "--gateway", self.gateway,
            "--opt", f"com.docker.network.driver.mtu={self.mtu}", self.name,
        )  # fmt: skip

    def boot(
        self,
        key: str,
        user_data: str,
        address: str,
        files: dict[str, Path] | None = None,
        networks: dict[str, str] | None = None,
    ) -> Node:
        """Create a node, seed cloud-init with `user_data` (NoCloud), and power it on.

        `files` (path on the node: local file) replace files of the image before the first boot;
        `networks` (name: the node's address there) are connected before it too.
        """
        container = f"{self.name}-{key}"
        seed = self.folder / key
        seed.mkdir()
        (seed / "user-data").write_text(user_data)
        (seed / "meta-data").write_text(f"instance-id: {container}\nlocal-hostname: {key}\n")
        docker(
            "create", "--name", container, "--hostname", key, "--label", TEST_LABEL,
            "--network", self.name, "--ip", address, *NODE_PRIVILEGES,
            "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
            "--volume", "/var/lib/docker", "--volume", "/var/lib/containerd",
            "--env", f"TRACKDAY_TEST_GATEWAY={self.gateway}",
            self.image,
        )  # fmt: skip
        docker("cp", f"{seed}/.", f"{container}:/var/lib/cloud/seed/nocloud/")
        for path, local in (files or {}).items():
            docker("cp", str(local), f"{container}:{path}")
        for network, network_address in (networks or {}).items():
            docker("network", "connect", "--ip", network_address, network, container)
        node = Node(key, container, address, self.ssh_key.private_key, self.folder / "known_hosts")
        docker("start", container)
        node.started = time.monotonic()
        self.nodes[key] = node
        return node

    def stand_in(
        self, key: str, address: str, image: str, command: list[str], run_args: tuple[str, ...] = ()
    ) -> str:
        """Start a server of the test's own (a stand-in of a cloud service) on the network at
        `address`; `run_args` go to `docker run`. Removed with the nodes; its container name."""
        container = f"{self.name}-{key}"
        docker(
            "run", "--detach", "--name", container, "--label", TEST_LABEL,
            "--network", self.name, "--ip", address, *run_args, image, *command,
        )  # fmt: skip
        self.stand_ins.append(container)
        return container

    def down(self) -> None:
        for container in self.stand_ins:
            docker("rm", "--force", "--volumes", container, check=False)
        for node in self.nodes.values():
            docker("rm", "--force", "--volumes", node.container, check=False)
        docker("network", "rm", self.name, check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


def remove_leftovers() -> None:
    """Containers and networks an interrupted run of these tests left (only those it labelled)."""
    found = docker("ps", "--all", "--quiet", "--filter", f"label={TEST_LABEL}", check=False)
    for container in found.stdout.split():
        docker("rm", "--force", "--volumes", container, check=False)
    found = docker("network", "ls", "--quiet", "--filter", f"label={TEST_LABEL}", check=False)
    for network in found.stdout.split():
        docker("network", "rm", network, check=False)


def new_cluster(image: str, subnet: str, ssh_key: SshKey, mtu: int = 1500) -> Cluster:
    cluster = Cluster(
        f"trackday-nodes-{uuid.uuid4().hex[:6]}", image, ipaddress.ip_network(subnet), ssh_key, mtu
    )
    cluster.create_network()
    return cluster


def keep_nodes() -> bool:
    """TRACKDAY_KEEP_NODES=1 leaves the nodes up after the tests, to look at them."""
    return os.environ.get("TRACKDAY_KEEP_NODES") == "1"


@dataclass(frozen=True)
class Swarm:
    """The swarm the nodes formed: each worker's node ID, the manager's published SSH host key."""

    node_ids: dict[str, str]
    manager_host_key: str
    seconds: float
