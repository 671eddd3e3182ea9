"""What the spot tests put beside the nodes: the clouds' metadata services at their real
addresses, and an S3 server for the runs' buckets.

The metadata stand-in (metadata_standin.py) runs on a network of its own, 169.254.169.0/24,
at 169.254.169.254 and under the name metadata.google.internal (Docker's DNS answers it on
that network); each node is connected to it, so the node reaches it at the address and name
its user data uses, unchanged. The S3 server is `rclone serve s3` (this machine's static
binary) in a container on the nodes' own network, over a folder of this machine.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.nodes import harness
from tests.nodes.harness import TEST_LABEL, Cluster, Node, docker

STANDIN = Path(__file__).with_name("metadata_standin.py")
METADATA_SUBNET = "169.254.169.0/24"
METADATA_ADDRESS = "169.254.169.254"
GCP_METADATA_HOST = "metadata.google.internal"
S3_KEYS = ("SPOTTESTKEY", "spot-test-secret")


@dataclass
class Metadata:
    """The running stand-in: raise notices, read what the nodes asked."""

    container: str
    network: str

    def connect(self, node: Node) -> None:
        docker("network", "connect", self.network, node.container)

    def write(self, name: str, content: str) -> None:
        """Set one of the stand-in's state files (a rename: it never reads half a file)."""
        # The folder may not be made yet by a stand-in just started: a write must not race it.
        script = f"mkdir -p /state && cat > /state/{name}.new && mv /state/{name}.new /state/{name}"
        subprocess.run(
            ["docker", "exec", "-i", self.container, "sh", "-c", script],
            input=content, text=True, check=True, timeout=60,
        )  # fmt: skip

    def requests(self) -> list[dict]:
        found = docker("exec", self.container, "cat", "/state/requests.log", check=False)
        return [json.loads(line) for line in found.stdout.splitlines()]

    def arrived(self) -> list[str]:
        """ "METHOD path" of every request as it arrived (answered or still waiting)."""
        return docker(
            "exec", self.container, "cat", "/state/arrived.log", check=False
        ).stdout.splitlines()

    def down(self) -> None:
        docker("rm", "--force", self.container, check=False)
        docker("network", "rm", self.network, check=False)


def start_metadata(image: str) -> Metadata:
    """The three clouds' metadata stand-in at 169.254.169.254 on a network of its own."""
    name = f"trackday-metadata-{uuid.uuid4().hex[:6]}"
    docker("network", "create", "--internal", "--label", TEST_LABEL,
           "--subnet", METADATA_SUBNET, name)  # fmt: skip
    docker(
        "run", "--detach", "--name", name, "--label", TEST_LABEL,
        "--network", name, "--ip", METADATA_ADDRESS, "--network-alias", GCP_METADATA_HOST,
        "--volume", f"{STANDIN}:/standin.py:ro", "--entrypoint", "python3", image,
        "/standin.py", "/state",
    )  # fmt: skip
    return Metadata(name, name)


@dataclass
class S3Server:
    container: str
    folder: Path
    endpoint: str

    def down(self) -> None:
        docker("rm", "--force", self.container, check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_s3(cluster: Cluster, image: str, address: str, folder: Path) -> S3Server:
    """`rclone serve s3` over `folder` (its sub-folders are the buckets) on the nodes' network.

    Objects the test puts in the folder are written before the server starts: rclone trusts
    its folder listings for minutes (tests/servers.py).
    """
    rclone = shutil.which("rclone") or str(harness.ROOT / ".venv" / "bin" / "rclone")
    name = f"{cluster.name}-s3"
    docker(
        "run", "--detach", "--name", name, "--label", TEST_LABEL,
        "--network", cluster.name, "--ip", address,
        "--volume", f"{Path(rclone).resolve()}:/usr/local/bin/rclone:ro",
        "--volume", f"{folder}:/data", "--entrypoint", "/usr/local/bin/rclone", image,
        "serve", "s3", "/data", "--addr", "0.0.0.0:9000", "--auth-key", ",".join(S3_KEYS),
    )  # fmt: skip
    return S3Server(name, folder, f"http://{address}:9000")
