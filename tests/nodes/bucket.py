"""The runs' bucket on the test network: the S3 endpoint every node and this machine reach.

A cloud's S3 endpoint is one address that the operator's machine and every node reach alike.
Here it is `rclone serve s3` (the same server tests/servers.py runs on loopback; a static
binary, bind-mounted read-only) in a container of the test's own at an address on the nodes'
network: containers on the nodes reach it through their node, and this machine reaches it
directly (the network is a bridge on this machine, internal: nothing else reaches it).
"""

from __future__ import annotations

import secrets
import urllib.error
import urllib.request
from pathlib import Path

from tests.nodes.harness import BASE_IMAGE, Cluster, docker, wait_for
from tests.servers import S3Server, venv_tool

S3_PORT = 9000


def serve_s3_on(cluster: Cluster, address: str, root: Path) -> S3Server:
    """rclone's S3 server at `address` on the cluster's network, its buckets under `root`."""
    key, secret = secrets.token_hex(10), secrets.token_urlsafe(30)
    container = cluster.stand_in(
        "s3", address, BASE_IMAGE,
        ["/rclone", "serve", "s3", "/data", "--addr", f"0.0.0.0:{S3_PORT}",
         "--auth-key", f"{key},{secret}", "--config", "/dev/null", "--vfs-cache-mode", "off"],
        ("--volume", f"{venv_tool('rclone')}:/rclone:ro", "--volume", f"{root}:/data"),
    )  # fmt: skip
    endpoint = f"http://{address}:{S3_PORT}"

    def answers() -> bool:
        try:
            urllib.request.urlopen(endpoint, timeout=5)
        except urllib.error.HTTPError:
            return True  # an S3 error for an unsigned request: the server is up
        except OSError:
            return False
        return True

    log = lambda: docker("logs", "--tail", "50", container, check=False).stderr  # noqa: E731
    wait_for(f"S3 server {endpoint}", answers, 60, log)
    return S3Server(endpoint=endpoint, key=key, secret=secret, root=root)
