"""Faults a real boot meets: a reboot half-way through the bootstrap."""

from __future__ import annotations

import json

import pytest

from tests.nodes import aws_api, harness
from tests.nodes.harness import Cluster, wait_for
from tests.nodes.render import Rendered, SshKey

pytestmark = [pytest.mark.docker, pytest.mark.nodes]


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
    api = aws_api.start(own_network, "10.42.7.2", aws_api.cluster_roles({"manager": "10.42.7.10"}))
    node = own_network.boot(
        "manager", aws_stack.node("manager").user_data, "10.42.7.10", files=api.node_files
    )
    state = "systemctl is-active trackday-bootstrap.service || true"
    wait_for("bootstrap running", lambda: node.root(state).strip() == "activating", 300, node.log)
    harness.docker("restart", "--time", "60", node.container, timeout=120)
    node.wait_bootstrapped()
    assert node.root("docker info --format '{{.Swarm.LocalNodeState}}'").strip() == "active"
    ready = json.loads(api.parameters()["/trackday/aws/trackday-ready"]["Value"])
    assert ready["bootstrap"] == "done"
