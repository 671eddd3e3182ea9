"""The runs' network against its real consumers: Docker Compose v2 (what rl_coach's SageMaker
local mode runs inside the simulator image) and standalone containers attaching to it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import docker
import pytest
import yaml

from tests.e2e.compose import compose_v2
from trackday.dr_network import (
    attach_s3_server,
    ensure_network,
    find_network,
    remove_network,
    remove_network_if_unused,
)
from trackday.errors import RunError
from training.deepracer.services import NETWORK, NETWORK_LABELS, WORKLOAD, WORKLOAD_LABEL

pytestmark = pytest.mark.docker
PROJECT = f"tmp{os.getpid()}"  # SageMaker local mode names the project after its temp folder


def compose_up(
    swarm: docker.DockerClient, image: str, network: str, folder: Path
) -> subprocess.CompletedProcess[str]:
    """`docker compose up` of a project that declares `network` as its own, the way the
    SageMaker SDK's local mode writes its compose file, with one service on it."""
    compose_file = folder / "docker-compose.yaml"
    compose_file.write_text(
        yaml.safe_dump(
            {
                "networks": {"sagemaker-local": {"name": network}},
                "services": {
                    "algo-1-abcde": {
                        "image": image,
                        "pull_policy": "never",
                        "command": ["echo", "algo up"],
                        "networks": {"sagemaker-local": {"aliases": ["algo-1-abcde"]}},
                    }
                },
            }
        )
    )
    try:
        return subprocess.run(
            [
                str(compose_v2()),
                "-p",
                PROJECT,
                "-f",
                str(compose_file),
                "up",
                "--abort-on-container-exit",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        for container in swarm.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={PROJECT}"}
        ):
            container.remove(force=True)


@pytest.fixture
def own_network(swarm: docker.DockerClient):
    """The runs' network as `start-*` makes it, removed afterwards unless it was there."""
    existed = find_network(swarm) is not None
    network_id = ensure_network(swarm)
    yield network_id
    if not existed:
        remove_network_if_unused(swarm, 60)


def test_compose_v2_runs_a_project_on_the_network_trackday_makes(
    swarm, busybox_image, own_network, tmp_path
):
    result = compose_up(swarm, busybox_image, NETWORK, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "incorrect label" not in result.stderr


def test_compose_v2_refuses_a_network_made_without_its_labels(swarm, busybox_image, tmp_path):
    """What the network was before: the real Compose refuses it, so the trainer never ran."""
    name = f"trackday-e2e-plain-{os.getpid()}"
    network = swarm.networks.create(name, driver="overlay", attachable=True)
    try:
        result = compose_up(swarm, busybox_image, name, tmp_path)
    finally:
        network.remove()
    assert result.returncode != 0
    assert "incorrect label com.docker.compose.network" in result.stderr


def test_a_trackday_network_without_compose_labels_is_recreated_while_unused(swarm):
    if find_network(swarm) is not None:
        pytest.skip(f"{NETWORK} exists on this engine; the test would replace it")
    swarm.api.create_network(
        NETWORK, driver="overlay", attachable=True, labels={WORKLOAD_LABEL: WORKLOAD}
    )  # as trackday made it before
    try:
        network_id = ensure_network(swarm)
        labels = swarm.api.inspect_network(network_id)["Labels"]
        assert labels == {WORKLOAD_LABEL: WORKLOAD, **NETWORK_LABELS}
    finally:
        remove_network_if_unused(swarm, 60)
    assert find_network(swarm) is None


def test_a_foreign_network_without_compose_labels_is_named_with_the_fix(swarm):
    if find_network(swarm) is not None:
        pytest.skip(f"{NETWORK} exists on this engine; the test would replace it")
    network_id = swarm.api.create_network(NETWORK, driver="overlay", attachable=True)["Id"]
    try:
        with pytest.raises(RunError, match=f"docker network rm {NETWORK}"):
            ensure_network(swarm)
        assert find_network(swarm)["Id"] == network_id  # not someone else's to remove
    finally:
        remove_network(swarm, network_id, 60)


def test_start_right_after_stop_attaches_every_time(swarm, busybox_image):
    """The race users hit: a start that follows a stop at once used to find the network on
    its way out ("Could not attach to network sagemaker-local: not found")."""
    if find_network(swarm) is not None:
        pytest.skip(f"{NETWORK} exists on this engine; the cycle needs it to be trackday's")
    container = swarm.containers.create(
        busybox_image, ["sleep", "600"], name=f"trackday-e2e-attach-{os.getpid()}"
    )
    try:
        container.start()
        for _ in range(5):
            network_id = ensure_network(swarm)
            container.reload()
            attach_s3_server(swarm, container, network_id)
            container.reload()
            assert "s3" in container.attrs["NetworkSettings"]["Networks"][NETWORK]["Aliases"]
            assert remove_network_if_unused(swarm, 60)[-1] == NETWORK
            assert find_network(swarm) is None
    finally:
        container.remove(force=True)
        if (network := find_network(swarm)) is not None:
            remove_network(swarm, network["Id"], 60)
