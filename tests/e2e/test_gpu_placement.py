"""One GPU per task: a node advertising two GPUs by UUID (as the rendered bootstrap writes
them into daemon.json, from a stand-in nvidia-smi) gives the trainer and a simulation worker
two distinct GPUs, and keeps a third GPU task pending rather than sharing one.

The node is a private dockerd of this test (its own data root, socket, containerd and swarm),
so the shared engine's configuration is never touched. Swarm hands each task its GPUs as
DOCKER_RESOURCE_GPU (swarmkit api/genericresource/helpers.go `EnvFormat`: the upper-cased
`DOCKER_RESOURCE_<kind>`, comma-joined values), which the NVIDIA runtime's `swarm-resource`
setting reads in place of NVIDIA_VISIBLE_DEVICES (infra/bootstrap/ sets both)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from contract.swarm import GPU_RESOURCE
from infra import bootstrap
from infra.bootstrap import NodeBootstrap
from tests.e2e.images import import_busybox
from trackday.swarm_jobs import task_template
from training.deepracer.params import Bucket
from training.deepracer.services import TRAINER_COMMAND, Site, training_services
from training.deepracer.settings import DeepRacerSettings

GPUS = ("GPU-0b7a1c8e-2f3d-4e5a-9b6c-7d8e9f0a1b2c", "GPU-5d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6")
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq7wrFzfOn0XQ3qgKj1TAm1ZcA0IQH2HKxq4V1f1l3M td"
IMAGE = "trackday-busybox:gpu-test"


def rendered_daemon_json(tmp_path: Path) -> Path:
    """The GPU section's daemon.json lines of a rendered bootstrap, run with a stand-in
    nvidia-smi that lists two GPUs."""
    script = bootstrap.user_data(NodeBootstrap("worker", "aws", "trackday", SSH_KEY))
    lines = [line.strip() for line in script.splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("gpus=$(nvidia-smi"))
    end = next(i for i, line in enumerate(lines) if line == 'mv "$daemon.new" "$daemon"')
    daemon = tmp_path / "daemon.json"
    daemon.write_text("{}\n")
    fragment = "\n".join(lines[start : end + 1]).replace("/etc/docker/daemon.json", str(daemon))
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "nvidia-smi").write_text("#!/bin/sh\nprintf '%s\\n' " + " ".join(GPUS) + "\n")
    (stubs / "nvidia-smi").chmod(0o755)
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", fragment],
        check=True,
        env={**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}"},
    )
    return daemon


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def gpu_node(tmp_path_factory) -> Iterator[docker.DockerClient]:
    """A private one-node swarm whose dockerd runs with the rendered daemon.json."""
    if os.geteuid() != 0 or not shutil.which("dockerd"):
        pytest.skip("a private dockerd needs root and dockerd")
    root = Path(tmp_path_factory.mktemp("gpu-node"))
    daemon = rendered_daemon_json(root)
    sock = root / "docker.sock"
    # A bridge of its own: with `--bridge none` dockerd deletes the host's docker0 at start
    # (moby's removeDefaultBridgeInterface), and the machine's own engine loses its bridge.
    bridge = f"tdgpu{os.getpid() % 100000}"
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    process = subprocess.Popen(
        [
            "dockerd",
            "--config-file",
            str(daemon),
            "--data-root",
            str(root / "data"),
            "--exec-root",
            str(root / "exec"),
            "--pidfile",
            str(root / "docker.pid"),
            "-H",
            f"unix://{sock}",
            "--bridge",
            bridge,
            "--iptables=false",
            "--ip6tables=false",
        ],
        stdout=(root / "dockerd.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    client = None
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                client = docker.DockerClient(base_url=f"unix://{sock}")
                break
            except docker.errors.DockerException:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        "private dockerd did not start: "
                        + (root / "dockerd.log").read_text()[-2000:]
                    )
                time.sleep(0.3)
        client.swarm.init(advertise_addr="127.0.0.1", listen_addr=f"127.0.0.1:{_free_port()}")
        yield client
    finally:
        if client is not None:
            client.close()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
        subprocess.run(["ip", "link", "del", bridge], check=False)
        shutil.rmtree(root, ignore_errors=True)


# What each task reports: the GPU Swarm assigned it, the GPU the trainer's SageMaker
# container is told to use, and what the NVIDIA runtime reads without a Swarm GPU.
REPORT = (
    'echo "report|gpu=$DOCKER_RESOURCE_GPU|cuda=$CUDA_VISIBLE_DEVICES'
    '|visible=$NVIDIA_VISIBLE_DEVICES"'
)


def _reports(client: docker.DockerClient, services: list) -> list[dict[str, str]]:
    """Each running task's report, from its container's log."""
    found = []
    for service in services:
        for task in service.tasks():
            if task["Status"]["State"] == "running":
                logs = client.api.logs(task["Status"]["ContainerStatus"]["ContainerID"]).decode()
                for line in logs.splitlines():
                    if line.startswith("report|"):
                        found.append(dict(part.split("=", 1) for part in line.split("|")[1:]))
    return found


def _deploy(client: docker.DockerClient, specs: list) -> list:
    """The services with this test's image, no run network or role label; each reports
    and sleeps. The trainer's command is production's, up to start.py."""
    services = []
    for spec in specs:
        if TRAINER_COMMAND in spec.args[0]:
            command = spec.args[0].replace(TRAINER_COMMAND, f"{REPORT}; sleep 600")
        else:
            command = f"{REPORT}; sleep 600"
        spec = dataclasses.replace(
            spec, image=IMAGE, networks=(), mounts=(), constraints=(), args=("sh", "-c", command)
        )
        template = task_template(spec, {})
        services.append(
            client.services.create(
                IMAGE,
                name=spec.name,
                command=list(spec.args[:2]),
                args=[spec.args[2]],
                env=[f"{k}={v}" for k, v in spec.env.items()],
                resources=template.get("Resources"),
                mode=docker.types.ServiceMode("replicated", replicas=spec.replicas),
                restart_policy=docker.types.RestartPolicy(condition="none"),
                stop_grace_period=10**9,
            )
        )  # 1 s: sleep as PID 1 ignores SIGTERM
    return services


def _settle(client: docker.DockerClient, services: list, reports: int, pending: int):
    """Until `reports` tasks have reported and `pending` wait, or the deadline passes."""
    deadline = time.monotonic() + 120
    while True:
        tasks = [t for s in services for t in s.tasks()]
        waiting = [t for t in tasks if t["Status"]["State"] == "pending"]
        seen = _reports(client, services)
        if (len(seen) == reports and len(waiting) == pending) or time.monotonic() > deadline:
            return tasks, waiting, seen
        time.sleep(0.5)


def test_two_fake_gpus_go_to_two_tasks_and_a_third_waits(
    gpu_node: docker.DockerClient, tmp_path: Path
):
    node = gpu_node.nodes.list()[0]
    advertised = node.attrs["Description"]["Resources"]["GenericResources"]
    assert sorted(r["NamedResourceSpec"]["Value"] for r in advertised) == sorted(GPUS)
    assert {r["NamedResourceSpec"]["Kind"] for r in advertised} == {GPU_RESOURCE}
    import_busybox(gpu_node, IMAGE, ("sh", "echo", "sleep"))
    # A cloud run's trainer and two workers, each reserving one GPU (services.py `_gpu`).
    specs = training_services(
        DeepRacerSettings(workers=2), Site(Bucket("runs", "eu-west-1"), gpu_nodes=True)
    )
    assert [spec.gpus for spec in specs] == [1, 1]
    services = _deploy(gpu_node, specs)
    try:
        tasks, pending, seen = _settle(gpu_node, services, 2, 1)
        assert sorted(r["gpu"] for r in seen) == sorted(GPUS), (tasks, seen)
        assert len(pending) == 1 and "insufficient resources" in pending[0]["Status"]["Err"]
    finally:
        for service in services:
            service.remove()


def test_one_node_pins_the_trainer_to_its_gpu_and_spreads_workers_or_shares_the_first(
    gpu_node: docker.DockerClient, tmp_path: Path
):
    import_busybox(gpu_node, IMAGE, ("sh", "echo", "sleep"))
    site = Site(Bucket("runs", "eu-west-1"), gpu_nodes=True, single_node=True)
    # gpuPerWorker: the worker reserves the GPU the trainer does not hold; the trainer's
    # SageMaker container is told its own (CUDA_VISIBLE_DEVICES, by UUID).
    spread = training_services(DeepRacerSettings(run_id=1, gpu_per_worker=True), site)
    services = _deploy(gpu_node, spread)
    try:
        tasks, _, (trainer, worker) = _settle(gpu_node, services, 2, 0)
        assert sorted((trainer["gpu"], worker["gpu"])) == sorted(GPUS), tasks
        assert trainer["cuda"] == trainer["gpu"]
    finally:
        for service in services:
            service.remove()
    # Unset on one node: the workers share; no Swarm GPU, so the runtime reads
    # NVIDIA_VISIBLE_DEVICES, which names the first GPU only instead of the image's `all`.
    shared = training_services(DeepRacerSettings(run_id=2, workers=2), site)
    tasks, _, seen = _settle(gpu_node, _deploy(gpu_node, shared), 3, 0)
    trainer = next(r for r in seen if r["cuda"])
    assert trainer["gpu"] in GPUS and trainer["cuda"] == trainer["gpu"], tasks
    workers = [r for r in seen if r is not trainer]
    assert workers == [{"gpu": "", "cuda": "", "visible": "0"}] * 2, seen
