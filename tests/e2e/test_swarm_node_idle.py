"""The node's idle power-off, run for real: the rendered idle check and power-off scripts
execute in a container of the locally made Debian base image, with the node's own paths.

Only what the node gets from elsewhere is replaced: `docker` (it answers whether a trackday
workload container runs), `nvidia-smi` (it reports GPU utilisation) and `systemctl` (a
container cannot power off); each records or answers from files the test controls.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import yaml

from infra import bootstrap
from infra.bootstrap import NodeBootstrap

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]

NODE = NodeBootstrap(
    role="worker",
    cloud="aws",
    ssh_user="trackday",
    ssh_public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq7wrFzfOn0XQ3qgKj1 t",
    idle_minutes=30,
    idle_gpu_percent=10,
)
STANDINS = {
    # Prints a container ID while the test says a workload runs (and checks the filter asked).
    "docker": '[ "$*" = "ps --quiet --filter label=trackday.workload" ] || exit 2\n'
    "[ -f /state/workload ] && echo 4f1c2a9b7e3d\nexit 0\n",
    "nvidia-smi": "cat /state/gpu-utilisation\n",
    "systemctl": 'echo "$*" >> /state/systemctl\n',
}


class Node:
    """The node's folders on the host, mounted where the scripts expect them."""

    def __init__(self, root: Path, image: str) -> None:
        self.image = image
        self.sbin, self.state = root / "sbin", root / "state"
        self.run, self.lib = root / "run", root / "lib"
        for folder in (self.sbin, self.state, self.run, self.lib):
            folder.mkdir()
        rendered = {
            Path(path).name: text
            for path, text in _files(NODE).items()
            if path in (bootstrap.IDLE_SCRIPT, bootstrap.POWEROFF_SCRIPT)
        }
        for name, text in {
            **rendered,
            **{n: f"#!/bin/sh\n{body}" for n, body in STANDINS.items()},
        }.items():
            (self.sbin / name).write_text(text)
            (self.sbin / name).chmod(0o755)
        self.gpu(0)

    def gpu(self, *percent: int) -> None:
        (self.state / "gpu-utilisation").write_text("".join(f"{p}\n" for p in percent))

    def workload(self, running: bool) -> None:
        (self.state / "workload").unlink(missing_ok=True)
        if running:
            (self.state / "workload").touch()

    def ready(self) -> None:
        (self.lib / Path(bootstrap.READY_FILE).name).touch()

    def idle_since(self, seconds_ago: int) -> None:
        (self.run / "idle-since").write_text(f"{int(time.time()) - seconds_ago}\n")

    def check(self) -> None:
        """One tick of the idle timer."""
        mounts = {
            self.sbin: "/usr/local/sbin",
            self.state: "/state",
            self.run: str(Path(bootstrap.IDLE_SINCE_FILE).parent),
            self.lib: str(Path(bootstrap.READY_FILE).parent),
        }
        argv = ["docker", "run", "--rm", "--network", "none"]
        for host, target in mounts.items():
            argv += ["--volume", f"{host}:{target}"]
        done = subprocess.run(
            [*argv, self.image, bootstrap.IDLE_SCRIPT], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr

    @property
    def powered_off(self) -> bool:
        calls = self.state / "systemctl"
        return calls.exists() and calls.read_text().splitlines() == ["poweroff"]

    @property
    def idle_mark(self) -> str | None:
        mark = self.run / "idle-since"
        return mark.read_text().strip() if mark.exists() else None


def _files(node: NodeBootstrap) -> dict[str, str]:
    document = yaml.safe_load(bootstrap.user_data(node))
    return {entry["path"]: entry["content"] for entry in document["write_files"]}


@pytest.fixture
def node(base_image: str, tmp_path: Path) -> Node:
    return Node(tmp_path, base_image)


def test_a_node_still_bootstrapping_never_counts_as_idle(node: Node) -> None:
    node.idle_since(3600)
    node.check()
    assert node.idle_mark is None and not node.powered_off


def test_idle_time_starts_at_the_first_idle_tick_and_powers_off_after_the_limit(
    node: Node,
) -> None:
    node.ready()
    node.gpu(3, 9)
    node.check()
    assert node.idle_mark is not None and not node.powered_off
    node.idle_since(29 * 60)
    node.check()
    assert not node.powered_off
    node.idle_since(30 * 60 + 5)
    node.check()
    assert node.powered_off


@pytest.mark.parametrize("busy", ["workload", "gpu"])
def test_a_running_workload_or_a_busy_gpu_resets_the_idle_time(node: Node, busy: str) -> None:
    node.ready()
    node.idle_since(45 * 60)
    if busy == "workload":
        node.workload(True)
    else:
        node.gpu(2, 10)  # one GPU at the threshold is busy
    node.check()
    assert node.idle_mark is None and not node.powered_off


def test_a_cpu_node_without_nvidia_smi_is_judged_by_its_workloads(
    base_image: str, tmp_path: Path
) -> None:
    node = Node(tmp_path, base_image)
    (node.sbin / "nvidia-smi").unlink()
    node.ready()
    node.idle_since(31 * 60)
    node.check()
    assert node.powered_off
