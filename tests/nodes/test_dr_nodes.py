"""A DeepRacer run across the booted nodes, deployed by `trackday dr start-training` as on a cloud.

The CLI reads the stack's outputs for this cluster (conftest.cluster_outputs: the manager's
address and host key, the stack's SSH key, the bucket) and reaches the manager's engine over
SSH. The simulator image cannot be pulled here: the e2e tests' stand-in (Debian's busybox under
the simulator's name and tag) is loaded into every node. Its entry script asks the run's S3
endpoint for the bucket list without signing, and prints the server's answer: a container that
prints the S3 server's "400 Bad Request" (rclone's answer to an unsigned request) reached the
endpoint from its node. A simulation node powered off mid-run: `dr status` reports the run a
worker short, and `stop-training` ends the run within its deadline.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml
from typer.testing import CliRunner

from tests.e2e.images import import_busybox
from tests.nodes.conftest import DEEPRACER, cluster_outputs, write_json
from tests.nodes.harness import Cluster, Node, Swarm, wait_for
from tests.nodes.render import Rendered
from tests.servers import S3Server
from tests.training.deepracer.dr_data import write_folder
from trackday.cli import app
from training.deepracer.services import NETWORK
from training.deepracer.settings import DeepRacerSettings

pytestmark = [pytest.mark.docker, pytest.mark.nodes, pytest.mark.timeout(600)]

SETTINGS = DeepRacerSettings.model_validate(DEEPRACER)
APPLETS = ("sh", "echo", "wget", "sleep")
ENTRY = """\
echo "s3: $(wget -q -O /dev/null "$S3_ENDPOINT_URL/" 2>&1)"
exec sleep 600
"""
S3_ANSWER = "HTTP/1.1 400 Bad Request"  # rclone's answer to an unsigned request
runner = CliRunner()


@pytest.fixture(scope="module")
def simulator(aws_cluster: Cluster) -> str:
    """The stand-in under the simulator's name and tag, in every node's engine."""
    reference = SETTINGS.simulator.reference
    host = docker.from_env()
    entry = '["/bin/sh", "/entry.sh"]'
    import_busybox(host, reference, APPLETS, {"entry.sh": ENTRY.encode()}, entry)
    for node in aws_cluster.nodes.values():
        node.load_image(reference)
    host.api.remove_image(reference, force=True)
    return reference


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory,
    aws_stack: Rendered,
    aws_cluster: Cluster,
    aws_swarm: Swarm,
    cluster_s3: S3Server,
) -> Iterator[Path]:
    """A project folder: the stack file with the run settings, its custom files, its outputs."""
    root = tmp_path_factory.mktemp("dr-project")
    config = {"trackday:target": "aws", "trackday:deepracer": DEEPRACER}
    (root / "Pulumi.aws.yaml").write_text(yaml.safe_dump({"config": config}))
    write_folder(root / SETTINGS.custom_files_dir)
    bucket = cluster_s3.create_bucket()
    outputs = cluster_outputs(aws_stack, aws_cluster, aws_swarm, cluster_s3, bucket)
    write_json(root / "outputs.json", outputs)
    yield root


def dr(project: Path, s3: S3Server, command: str, *args: str):
    argv = ["dr", command, "--stack", "aws", "--dir", str(project)]
    argv += ["--outputs", str(project / "outputs.json"), *args]
    return runner.invoke(app, argv, env=s3.env())


def tasks_by_node(manager: Node, service: str) -> dict[str, list[str]]:
    """Running tasks of a service: the hostname of each task's node -> its containers' IDs."""
    names = {
        n["ID"]: n["Description"]["Hostname"]
        for n in json.loads(manager.root("docker node ls -q | xargs docker node inspect"))
    }
    found: dict[str, list[str]] = {}
    tasks = manager.root(f"docker service ps -q --filter desired-state=running {service}").split()
    for task in json.loads(manager.root(f"docker inspect {' '.join(tasks)}")) if tasks else []:
        if task["Status"]["State"] == "running":
            container = task["Status"]["ContainerStatus"]["ContainerID"]
            found.setdefault(names[task["NodeID"]], []).append(container)
    return found


def wait_placed(manager: Node, prefix: str, timeout: float = 180) -> dict[str, dict]:
    """The run's running tasks by job and node, once the trainer and every worker run."""
    placed: dict[str, dict[str, list[str]]] = {}

    def running() -> bool:
        placed["trainer"] = tasks_by_node(manager, f"{prefix}-trainer")
        placed["simulation"] = tasks_by_node(manager, f"{prefix}-simulation")
        workers = sum(map(len, placed["simulation"].values()))
        return workers == SETTINGS.workers and bool(placed["trainer"])

    wait_for("the run's tasks running", running, timeout, lambda: f"{placed}\n{manager.log()}")
    return placed


def left_on(node: Node, image: str) -> list[str]:
    """What a run could leave on a node: its containers, the runs' network, (manager) its
    services and secrets."""
    left = node.root(f"docker ps -a --format '{{{{.Names}}}}' --filter ancestor={image}").split()
    left += node.root(f"docker network ls -q --filter name=^{NETWORK}$").split()
    if node.key == "manager":
        left += node.root("docker service ls -q; docker secret ls -q").split()
    return left


def test_a_training_run_spreads_over_the_nodes_and_stop_leaves_nothing(
    aws_cluster: Cluster, simulator: str, project: Path, cluster_s3: S3Server
) -> None:
    manager = aws_cluster.nodes["manager"]
    started = dr(project, cluster_s3, "start-training", "--quiet")
    assert started.exit_code == 0, started.output
    prefix = f"trackday-dr-{SETTINGS.run_id}"
    placed = wait_placed(manager, prefix)
    assert set(placed["trainer"]) == {"manager"}
    # One worker per simulation node: Swarm spreads a service's replicas over the nodes.
    assert {key: len(ids) for key, ids in placed["simulation"].items()} == {
        "worker-1": 1,
        "worker-2": 1,
    }
    for job in placed.values():
        for key, containers in job.items():
            node = aws_cluster.nodes[key]
            for container in containers:

                def answered(node: Node = node, container: str = container) -> bool:
                    return "s3:" in node.root(f"docker logs {container} 2>&1")

                wait_for(f"{container[:12]} on {key} asks S3", answered, 60, node.log)
                assert S3_ANSWER in node.root(f"docker logs {container} 2>&1"), key

    stopped = dr(project, cluster_s3, "stop-training")
    assert stopped.exit_code == 0, stopped.output
    assert f"removed {prefix}-trainer" in stopped.output
    for node in aws_cluster.nodes.values():
        assert left_on(node, simulator) == [], node.key


def test_a_simulation_node_powered_off_mid_run_is_reported_and_stop_ends_the_run(
    aws_cluster: Cluster, simulator: str, project: Path, cluster_s3: S3Server
) -> None:
    """The run's services never restart a task (restart condition none, contract/swarm.py), so
    Swarm starts no replacement for the lost worker: `dr status` shows the run one worker
    short, `stop-training` ends it on the nodes left, and the lost node, once back, is clean."""
    manager, lost = aws_cluster.nodes["manager"], aws_cluster.nodes["worker-1"]
    run = ("--run-id", "2")
    started = dr(project, cluster_s3, "start-training", "--quiet", "--wipe", *run)
    assert started.exit_code == 0, started.output
    assert set(wait_placed(manager, "trackday-dr-2")["simulation"]) == {"worker-1", "worker-2"}
    lost.power_off()
    try:
        shown: list[str] = []

        def reported() -> bool:
            status = dr(project, cluster_s3, "status")
            shown[:] = [status.output]
            return status.exit_code == 0 and "1/2" in status.output

        # Swarm marks the node down once its heartbeats stop; its task is no longer running.
        wait_for("dr status: one worker short", reported, 180, lambda: shown[0])
        assert "running on worker-2" in shown[0] and "running on worker-1" not in shown[0]
        stopped = dr(project, cluster_s3, "stop-training", *run)
        assert stopped.exit_code == 0, stopped.output
        for key in ("manager", "worker-2"):
            assert left_on(aws_cluster.nodes[key], simulator) == [], key
    finally:
        lost.power_on()
        back = lambda: node_ready(manager, "worker-1")  # noqa: E731
        wait_for("worker-1 back in the swarm", back, 300, lost.log)
    # The service is gone: the node removes its task's container once back.
    clean = lambda: left_on(lost, simulator) == []  # noqa: E731
    wait_for("worker-1 clean after its return", clean, 120, lost.log)


def node_ready(manager: Node, hostname: str) -> bool:
    state = manager.root(f"docker node inspect {hostname} --format '{{{{.Status.State}}}}'")
    return state.strip() == "ready"
