"""The AWS stack's nodes boot their rendered user data and form the swarm themselves.

Slow (a few minutes: three Ubuntu machines boot and install Docker), so marked `nodes`; the
default test run includes this module (see docs/architecture.md, "How nodes are proven").
"""

from __future__ import annotations

import json

import pytest

from contract.swarm import ROLE_LABEL
from infra.bootstrap import NODE_ENV_FILE, READY_FILE
from tests.nodes.harness import Cluster, Swarm
from training.deepracer.services import SAGEMAKER_DIR

pytestmark = [pytest.mark.docker, pytest.mark.nodes]


def test_every_node_reaches_bootstrap_done(aws_cluster: Cluster) -> None:
    times = {key: node.wait_bootstrapped() for key, node in aws_cluster.nodes.items()}
    print(f"first boot to {READY_FILE}: " + ", ".join(f"{k} {s:.0f} s" for k, s in times.items()))
    for node in aws_cluster.nodes.values():
        assert node.root(f"cat {NODE_ENV_FILE}").strip() == f"TRACKDAY_PRIVATE_IP={node.address}"
        # The user data's own steps ran too: its packages, its user, no failed unit.
        assert node.root("command -v jq docker").count("\n") == 2
        assert node.root("id -nG trackday").split().count("docker") == 1
        assert node.root("systemctl --failed --no-legend --plain").strip() == "", node.log()


def test_manager_initialises_the_swarm_on_its_private_address_with_its_label(
    aws_cluster: Cluster,
) -> None:
    manager = aws_cluster.nodes["manager"]
    manager.wait_bootstrapped()
    swarm = json.loads(manager.root("docker info --format '{{json .Swarm}}'"))
    assert swarm["LocalNodeState"] == "active" and swarm["ControlAvailable"]
    assert swarm["NodeAddr"] == manager.address
    assert any(m["Addr"] == f"{manager.address}:2377" for m in swarm["RemoteManagers"])
    labels = json.loads(manager.root("docker node inspect self --format '{{json .Spec.Labels}}'"))
    assert labels[ROLE_LABEL] == "trainer"


def test_docker_is_configured_as_the_gpu_path_less_the_gpu(aws_cluster: Cluster) -> None:
    """No NVIDIA device here: runc stays the default runtime and no GPU is advertised."""
    for node in aws_cluster.nodes.values():
        node.wait_bootstrapped()
        info = json.loads(node.root("docker info --format '{{json .}}'"))
        assert info["DefaultRuntime"] == "runc"
        assert "nvidia" not in info["Runtimes"]
        assert not info.get("GenericResources")
        assert "no NVIDIA device" in node.root("journalctl --no-pager -u trackday-bootstrap")


def test_the_trainers_bind_mount_folder_exists_on_the_trainer_node(aws_cluster: Cluster) -> None:
    """The trainer bind-mounts SAGEMAKER_DIR; Docker refuses to start it if it is missing."""
    manager = aws_cluster.nodes["manager"]
    manager.wait_bootstrapped()
    assert manager.has(SAGEMAKER_DIR), manager.root(f"ls -la {SAGEMAKER_DIR.rsplit('/', 1)[0]}")


def test_workers_join_through_parameter_store_and_every_node_is_ready(
    aws_cluster: Cluster, aws_swarm: Swarm
) -> None:
    manager = aws_cluster.nodes["manager"]
    listing = [
        json.loads(line)
        for line in manager.root("docker node ls --format '{{json .}}'").splitlines()
    ]
    assert len(listing) == len(aws_cluster.nodes)
    assert {n["Status"] for n in listing} == {"Ready"}
    assert {n["Hostname"] for n in listing} == set(aws_cluster.nodes)
    host_key = manager.root("cat /etc/ssh/ssh_host_ed25519_key.pub").split()
    assert aws_swarm.manager_host_key == " ".join(host_key[:2])  # what the manager published
    roles = {n["Hostname"]: n["ManagerStatus"] for n in listing}
    assert roles.pop("manager") == "Leader" and set(roles.values()) == {""}
    for key, node_id in aws_swarm.node_ids.items():
        spec = json.loads(manager.root(f"docker node inspect {node_id} --format '{{{{json .}}}}'"))
        assert spec["Description"]["Hostname"] == key
        assert spec["Spec"]["Labels"][ROLE_LABEL] == "simulation"
        assert spec["Status"]["Addr"] == aws_cluster.nodes[key].address


def test_the_join_token_never_reaches_a_command_line(
    aws_cluster: Cluster, aws_swarm: Swarm
) -> None:
    """Workers got the token through pipes: no process argument and no log on any worker
    holds it."""
    manager = aws_cluster.nodes["manager"]
    token = manager.root("docker swarm join-token --quiet worker").strip()
    for key in aws_swarm.node_ids:
        worker = aws_cluster.nodes[key]
        found = worker.root(f"journalctl --no-pager | grep -c -- {token} || true").strip()
        assert found == "0"
