"""The budget's timers are armed on every node, and power the node off when they fire.

The TTL is shortened through the stack's own setting (`budget.ttlHours: 0.02`, one minute).
The idle power-off keeps the stack's 30 minutes: the test says the node has been idle since 31
minutes ago (the idle check's own record, /run/trackday/idle-since), and the next check, a
minute later, powers it off. This module runs after the swarm's: it powers a worker off.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from infra.bootstrap import IDLE_SINCE_FILE
from tests.nodes import harness
from tests.nodes.harness import Cluster, Node, Swarm, wait_for
from tests.nodes.render import SshKey, render

pytestmark = [pytest.mark.docker, pytest.mark.nodes]

POWER_OFF_TIMEOUT_S = 300


def powered_off_by_trackday(node: Node, folder: Path) -> str:
    """The node's persistent journal after it stopped: trackday's own power-off lines."""
    harness.docker("cp", f"{node.container}:/var/log/journal", str(folder))
    journal = subprocess.run(
        ["journalctl", "--directory", str(folder / "journal"), "--no-pager", "-t", "trackday"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return journal.stdout


def test_ttl_and_idle_timers_are_armed_on_every_node(aws_cluster: Cluster, aws_swarm: Swarm):
    for node in aws_cluster.nodes.values():
        timers = node.root("systemctl is-active trackday-ttl.timer trackday-idle.timer")
        assert timers.split() == ["active", "active"], node.log()


def test_the_ttl_powers_the_node_off(node_image: str, ssh_key: SshKey, tmp_path: Path) -> None:
    stack = render("aws", ssh_key, nodes={"count": 1}, budget={"ttlHours": 0.02})
    cluster = harness.new_cluster(node_image, "10.42.9.0/24", ssh_key)
    try:
        node = cluster.boot("manager", stack.node("manager").user_data, "10.42.9.10")
        wait_for("the TTL power-off", lambda: not node.running(), POWER_OFF_TIMEOUT_S, node.log)
        lasted = time.monotonic() - node.started
        assert lasted >= 60, "powered off before the one-minute TTL"
        assert "powering off" in powered_off_by_trackday(node, tmp_path)
        print(f"TTL of one minute: powered off {lasted:.0f} s after boot")
    finally:
        if not harness.keep_nodes():
            cluster.down()


def test_an_idle_worker_powers_itself_off(
    aws_cluster: Cluster, aws_swarm: Swarm, tmp_path: Path
) -> None:
    worker = aws_cluster.nodes["worker-2"]
    since = int(time.time()) - 31 * 60
    worker.root(f"echo {since} > {IDLE_SINCE_FILE}")
    wait_for("the idle power-off", lambda: not worker.running(), POWER_OFF_TIMEOUT_S, worker.log)
    assert "idle for 30 minutes" in powered_off_by_trackday(worker, tmp_path)
