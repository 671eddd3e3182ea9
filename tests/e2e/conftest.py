"""Docker fixtures for end-to-end tests: the engine, a locally made base image, the trainer image.

No registry is reachable here, so the base image is made with debootstrap (scripts/base-image)
and the trainer image is built from it, CPU-only, with `--network host`. Each is made once
per session and reused by every e2e test; the engine keeps them (and their layers) between
sessions, so only the first session pays for the build.

The image is built for donkeycar 5.3.0 on Debian bookworm (Python 3.11). donkeycar 5.4.0
needs Python 3.12, so its image builds on Ubuntu noble; that run is opt-in, as it costs
another base image and TensorFlow install: `TRACKDAY_E2E_DONKEYCAR=5.4.0 pytest tests/e2e`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from contract.swarm import ROLE_LABEL
from tests.e2e.images import import_busybox

ROOT = Path(__file__).resolve().parents[2]
TRAINER_DOCKERFILE = ROOT / "training" / "donkeycar" / "Dockerfile"
BUILD_TIMEOUT_S = 1800


@dataclass(frozen=True)
class Donkeycar:
    """A donkeycar version, the local base image it builds on, and the TensorFlow it pins."""

    version: str
    base_suite: str
    tensorflow: str  # version prefix

    @property
    def image(self) -> str:
        return f"trackday-donkeycar:{self.version}-test"


DONKEYCARS = {
    "5.3.0": Donkeycar("5.3.0", base_suite="bookworm", tensorflow="2.15."),  # Python 3.11
    "5.4.0": Donkeycar("5.4.0", base_suite="noble", tensorflow="2.19."),  # Python 3.12
}


def run_logged(argv: list[str], log: Path, timeout: float) -> None:
    """Run `argv` with its output in `log`; on failure, fail the test showing the log's tail."""
    with open(log, "wb") as out:
        result = subprocess.run(
            argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False
        )
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        pytest.fail(f"{' '.join(argv[:3])} failed ({result.returncode}), log {log}:\n{tail}")


@pytest.fixture(scope="session")
def docker_engine() -> str:
    """The docker command, once the engine answers (scripts/setup test installs and starts it)."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.fail("docker not found: run scripts/setup test")
    info = subprocess.run([docker, "info"], capture_output=True, text=True, check=False)
    if info.returncode != 0:
        pytest.fail(f"Docker engine not running: run scripts/setup test ({info.stderr.strip()})")
    return docker


@pytest.fixture(scope="session")
def donkeycar() -> Donkeycar:
    """The donkeycar version under test: 5.3.0 unless TRACKDAY_E2E_DONKEYCAR names another."""
    version = os.environ.get("TRACKDAY_E2E_DONKEYCAR", "5.3.0")
    if version not in DONKEYCARS:
        pytest.fail(f"TRACKDAY_E2E_DONKEYCAR={version}: expected one of {', '.join(DONKEYCARS)}")
    return DONKEYCARS[version]


@pytest.fixture(scope="session")
def base_image(
    docker_engine: str, donkeycar: Donkeycar, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A Debian or Ubuntu image with Python, made here (debootstrap + docker import), once."""
    log = tmp_path_factory.mktemp("base-image") / "base-image.log"
    run_logged([str(ROOT / "scripts" / "base-image"), donkeycar.base_suite], log, timeout=900)
    return f"trackday-base:{donkeycar.base_suite}"


@pytest.fixture(scope="session")
def trainer_image(
    docker_engine: str,
    base_image: str,
    donkeycar: Donkeycar,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """The DonkeyCar trainer image (training/donkeycar/Dockerfile) on the local base, CPU-only."""
    log = tmp_path_factory.mktemp("trainer-image") / "build.log"
    argv = [
        docker_engine, "build", "--network", "host",
        "--file", str(TRAINER_DOCKERFILE),
        "--build-arg", f"BASE_IMAGE={base_image}",
        "--build-arg", f"DONKEYCAR_VERSION={donkeycar.version}",
        "--build-arg", "TENSORFLOW_CUDA=false",
        "--tag", donkeycar.image,
        str(ROOT),
    ]  # fmt: skip
    run_logged(argv, log, timeout=BUILD_TIMEOUT_S)
    return donkeycar.image


# A one-node swarm and a tiny image, shared by every Swarm test (jobs, submit, DeepRacer runs).
BUSYBOX_IMAGE = "trackday-busybox:test"
APPLETS = ("sh", "echo", "cat", "env", "sleep", "test", "touch", "seq", "sha256sum")


def ensure_swarm(client: docker.DockerClient) -> str:
    """Make the engine a swarm manager on 127.0.0.1 unless it is in a swarm; its node ID."""
    if client.info()["Swarm"]["LocalNodeState"] != "active":
        try:
            client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
        except docker.errors.APIError:
            if client.info()["Swarm"]["LocalNodeState"] != "active":  # not a concurrent init
                raise
    info = client.info()["Swarm"]
    if not info.get("ControlAvailable"):
        pytest.fail("this Docker engine is a swarm worker, not a manager: jobs cannot start here")
    return info["NodeID"]


@pytest.fixture(scope="session")
def swarm(docker_engine: str) -> Iterator[docker.DockerClient]:
    """The local engine as a one-node swarm whose node is labelled trackday.role=trainer."""
    client = docker.from_env()
    node = client.nodes.get(ensure_swarm(client))
    spec = node.attrs["Spec"]
    if spec.get("Labels", {}).get(ROLE_LABEL) != "trainer":
        spec["Labels"] = {**spec.get("Labels", {}), ROLE_LABEL: "trainer"}
        node.update(spec)
    yield client
    client.close()


@pytest.fixture(scope="session")
def busybox_image(swarm: docker.DockerClient) -> str:
    """An image holding only busybox and its applets, imported from a root-filesystem tar."""
    return import_busybox(swarm, BUSYBOX_IMAGE, APPLETS)
