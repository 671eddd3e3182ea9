"""Fixtures of the node tests: the node image, the pool's SSH key, and booted clusters.

The AWS stack's three nodes (a manager and two workers, as `nodes.count: 3` declares them) boot
once per session on a network with the smallest MTU the clouds give a VM (1460 bytes, Google
Cloud's VPC default; AWS allows 9001 inside a VPC, Azure 1500), at the addresses the program
declares them at (its private subnet, 10.42.1.0/24). Set TRACKDAY_KEEP_NODES=1 to leave them up.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from infra.nodes import SUBNET_CIDR
from tests.nodes import harness
from tests.nodes.render import Rendered, SshKey, make_ssh_key, render

CLOUD_MIN_MTU = 1460
WORKER_ADDRESSES = ("10.42.1.250", "10.42.1.251", "10.42.1.252")


@pytest.fixture(scope="session")
def node_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    if shutil.which("docker") is None or harness.docker("info", check=False).returncode:
        pytest.fail("Docker engine not running: run scripts/setup test")
    harness.remove_leftovers()
    return harness.node_image(tmp_path_factory.mktemp("node-image") / "build.log")


@pytest.fixture(scope="session")
def ssh_key(tmp_path_factory: pytest.TempPathFactory) -> SshKey:
    return make_ssh_key(tmp_path_factory.mktemp("ssh"))


@pytest.fixture(scope="session")
def aws_stack(ssh_key: SshKey) -> Rendered:
    """The AWS stack as shipped, with three nodes."""
    return render("aws", ssh_key, nodes={"count": 3})


def boot_all(cluster: harness.Cluster, rendered: Rendered) -> dict[str, harness.Node]:
    """Boot every node the stack declares: the manager at the address the program gave it."""
    manager_address = rendered.outputs["managerPrivateAddress"]
    spare = iter(a for a in WORKER_ADDRESSES if a != manager_address)
    for node in rendered.nodes:
        address = manager_address if node.role == "manager" else next(spare)
        cluster.boot(node.key, node.user_data, address)
    return cluster.nodes


@pytest.fixture(scope="session")
def aws_cluster(node_image: str, ssh_key: SshKey, aws_stack: Rendered) -> Iterator[harness.Cluster]:
    """The AWS stack's three nodes, powered on (not yet waited for)."""
    cluster = harness.new_cluster(node_image, SUBNET_CIDR, ssh_key, mtu=CLOUD_MIN_MTU)
    try:
        boot_all(cluster, aws_stack)
        yield cluster
    finally:
        if not harness.keep_nodes():
            cluster.down()


@pytest.fixture(scope="session")
def aws_swarm(aws_cluster: harness.Cluster, aws_stack: Rendered) -> harness.Swarm:
    """The AWS nodes once bootstrapped and joined by the program's commands."""
    for node in aws_cluster.nodes.values():
        node.wait_bootstrapped()
    swarm = harness.run_swarm_commands(aws_cluster, aws_stack.swarm_commands)
    print(f"three booted nodes to a swarm: {swarm.seconds:.0f} s")
    return swarm
