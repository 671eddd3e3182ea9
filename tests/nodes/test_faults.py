"""Faults a real boot meets: a reboot half-way through the bootstrap, a bootstrap that fails."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.nodes import harness
from tests.nodes.harness import Cluster, wait_for
from tests.nodes.render import Rendered, SshKey

pytestmark = [pytest.mark.docker, pytest.mark.nodes]

# The program's join token command must report a failed manager bootstrap well within
# pulumi-command's patience, not after the bootstrap's 45 minutes.
REPORT_TIMEOUT_S = 90


@pytest.fixture
def own_network(node_image: str, ssh_key: SshKey, request: pytest.FixtureRequest):
    """A one-node network beside the cluster's (a subnet of its own)."""
    cluster = harness.new_cluster(node_image, f"10.42.{request.param}.0/24", ssh_key)
    yield cluster
    if not harness.keep_nodes():
        cluster.down()


@pytest.mark.parametrize("own_network", [7], indirect=True)
def test_a_node_rebooted_half_way_through_its_bootstrap_finishes_at_the_next_boot(
    own_network: Cluster, aws_stack: Rendered
) -> None:
    node = own_network.boot("worker-1", aws_stack.node("worker-1").user_data, "10.42.7.10")
    state = "systemctl is-active trackday-bootstrap.service || true"
    wait_for("bootstrap running", lambda: node.root(state).strip() == "activating", 300, node.log)
    harness.docker("restart", "--time", "60", node.container, timeout=120)
    node.wait_bootstrapped()
    assert node.root("docker info --format '{{.Swarm.LocalNodeState}}'").strip() == "inactive"


@pytest.mark.parametrize("own_network", [8], indirect=True)
def test_a_failed_manager_bootstrap_is_reported_by_the_join_token_command(
    own_network: Cluster, aws_stack: Rendered, tmp_path: Path
) -> None:
    """A broken package mirror: Docker cannot be installed, the bootstrap fails."""
    empty = tmp_path / "Packages"
    empty.write_text("")
    node = own_network.boot(
        "manager", aws_stack.node("manager").user_data, "10.42.8.10",
        files={"/opt/trackday-archive/Packages": empty},
    )  # fmt: skip
    # It retries itself (Restart=on-failure): wait until it has failed once and is retrying.
    restarts = (
        "systemctl show --property NRestarts --value trackday-bootstrap.service"
        " 2>/dev/null || echo 0"
    )  # 0 until systemd answers
    wait_for("bootstrap failed", lambda: int(node.root(restarts).strip() or 0) >= 1, 300, node.log)
    token = next(c for c in aws_stack.swarm_commands if c.step == "join-token")
    try:
        result = node.ssh(token.create, timeout=REPORT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the join token command still waits after {REPORT_TIMEOUT_S} s")
    assert result.returncode != 0
    assert "node bootstrap failed" in result.stderr
    assert "Unable to locate package docker.io" in result.stderr
