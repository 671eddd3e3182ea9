"""Fixtures of the node tests: the node image, the pool's SSH key, and booted clusters.

The AWS stack's three nodes (a manager and two workers, as `nodes.count: 3` declares them) boot
once per session on a network with the smallest MTU the clouds give a VM (1460 bytes, Google
Cloud's VPC default; AWS allows 9001 inside a VPC, Azure 1500), at the addresses the program
declares them at (its private subnet, 10.42.1.0/24). Set TRACKDAY_KEEP_NODES=1 to leave them up.
The stack runs DeepRacer on the CPU (the simulator's `-cpu` image, no X server: the nodes have
no GPU), the run settings `trackday dr` reads from the same stack file (test_dr_nodes.py).
The runs' bucket is an S3 server on the nodes' network (bucket.py), and `cluster_outputs` what
`pulumi stack output --json --show-secrets` gives for this cluster. The nodes form the swarm
themselves through Parameter Store, with their roles' credentials from IMDS (aws_api.py).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.nodes import SUBNET_CIDR

# The e2e tests' DonkeyCar trainer image (built once, kept by the engine), for test_donkey_nodes.py.
from tests.e2e.conftest import base_image, docker_engine, donkeycar, trainer_image  # noqa: F401
from tests.nodes import aws_api, harness
from tests.nodes.bucket import serve_s3_on
from tests.nodes.render import Rendered, SshKey, make_ssh_key, render
from tests.servers import S3Server

CLOUD_MIN_MTU = 1460
WORKER_ADDRESSES = ("10.42.1.250", "10.42.1.251", "10.42.1.252")
S3_ADDRESS = "10.42.1.240"
AWS_API_ADDRESS = "10.42.1.241"
# A CPU-only DeepRacer stack: the simulator's CPU image, no GPU X server on the nodes.
DEEPRACER = {"simulator": {"tag": "6.0.4-cpu"}, "opengl": False, "workers": 2}


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
    return render("aws", ssh_key, nodes={"count": 3}, deepracer=DEEPRACER)


def boot_all(cluster: harness.Cluster, rendered: Rendered) -> aws_api.AwsApi:
    """Boot every node the stack declares (the manager at the address the program gave it)
    beside the AWS stand-in that knows each node's role."""
    manager_address = rendered.outputs["managerPrivateAddress"]
    spare = iter(a for a in WORKER_ADDRESSES if a != manager_address)
    addresses = {
        node.key: manager_address if node.role == "manager" else next(spare)
        for node in rendered.nodes
    }
    api = aws_api.start(cluster, AWS_API_ADDRESS, aws_api.cluster_roles(addresses))
    for node in rendered.nodes:
        cluster.boot(node.key, node.user_data, addresses[node.key], files=api.node_files)
    return api


@pytest.fixture(scope="session")
def aws_nodes(
    node_image: str, ssh_key: SshKey, aws_stack: Rendered
) -> Iterator[tuple[harness.Cluster, aws_api.AwsApi]]:
    """The AWS stack's three nodes, powered on (not yet waited for), and its AWS stand-in."""
    cluster = harness.new_cluster(node_image, SUBNET_CIDR, ssh_key, mtu=CLOUD_MIN_MTU)
    try:
        api = boot_all(cluster, aws_stack)
        yield cluster, api
    finally:
        if not harness.keep_nodes():
            cluster.down()


@pytest.fixture(scope="session")
def aws_cluster(aws_nodes: tuple[harness.Cluster, aws_api.AwsApi]) -> harness.Cluster:
    return aws_nodes[0]


@pytest.fixture(scope="session")
def aws_swarm(aws_nodes: tuple[harness.Cluster, aws_api.AwsApi]) -> harness.Swarm:
    """The AWS nodes once bootstrapped and swarmed by themselves through Parameter Store."""
    swarm = aws_api.wait_for_swarm(aws_nodes[1], aws_nodes[0])
    print(f"three booted nodes to a swarm: {swarm.seconds:.0f} s")
    return swarm


@pytest.fixture(scope="session")
def cluster_s3(aws_cluster: harness.Cluster, tmp_path_factory: pytest.TempPathFactory) -> S3Server:
    """The runs' S3 endpoint on the nodes' network (the nodes have no AWS identity here: the
    stack's outputs give its keys, as the azure stack gives its S3 gateway's)."""
    return serve_s3_on(aws_cluster, S3_ADDRESS, tmp_path_factory.mktemp("cluster-s3"))


def cluster_outputs(
    rendered: Rendered, cluster: harness.Cluster, swarm: harness.Swarm, s3: S3Server, bucket: str
) -> dict[str, Any]:
    """The stack's outputs for this cluster: the program's, with what only a real `pulumi up`
    knows (the manager's address and host key, the bucket) from the booted nodes."""
    return rendered.outputs | {
        "managerAddress": cluster.nodes["manager"].address,
        "managerHostKey": swarm.manager_host_key,
        "bucketUrl": f"s3://{bucket}",
        "nodeBucketUrl": f"s3://{bucket}",
        "s3Endpoint": s3.endpoint,
        "s3AccessKeyId": s3.key,
        "s3SecretAccessKey": s3.secret,
    }


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path
