"""Overlay traffic crosses nodes over a network with the clouds' smallest MTU.

The file server answers by DNS round-robin (its task's own address): this machine's kernel has
no IPVS (CONFIG_IP_VS is unset), which Swarm's virtual service addresses need, so a service's
virtual IP does not route here. It does on the clouds' Ubuntu kernels.

The runs' overlay (`sagemaker-local`) is made by trackday's own code, through the manager's
Docker engine over SSH as `trackday dr` reaches it; a service on one worker serves a file that a
container on the other worker fetches by the service's name.
"""

from __future__ import annotations

import hashlib
import json

import docker
import pytest
from docker.types import EndpointSpec

from tests.e2e.images import import_busybox
from tests.nodes.conftest import CLOUD_MIN_MTU
from tests.nodes.harness import Cluster, Swarm, wait_for
from tests.nodes.render import SshKey
from trackday import dr_runs, manager_ssh
from training.deepracer.services import NETWORK

pytestmark = [pytest.mark.docker, pytest.mark.nodes]

IMAGE = "trackday-busybox:nodes"
APPLETS = (
    "sh",
    "httpd",
    "wget",
    "sha256sum",
    "dd",
    "cat",
    "mkdir",
    "nslookup",
    "awk",
    "seq",
    "sleep",
)
BLOB_KB = 4096


@pytest.fixture(scope="module")
def manager_engine(aws_cluster: Cluster, aws_swarm: Swarm, ssh_key: SshKey):
    """The manager's engine over SSH with the stack's key, checked against its host key."""
    manager = aws_cluster.nodes["manager"]
    client = manager_ssh.connect(
        manager.address, "trackday", ssh_key.private_key.read_text(),
        host_key=aws_swarm.manager_host_key,
    )  # fmt: skip
    yield client
    client.close()


def test_a_service_on_one_worker_serves_another_across_the_runs_overlay(
    aws_cluster: Cluster, manager_engine: docker.DockerClient
) -> None:
    import_busybox(docker.from_env(), IMAGE, APPLETS)
    for node in aws_cluster.nodes.values():
        node.load_image(IMAGE)
    dr_runs.ensure_network(manager_engine)
    serve = (
        f"mkdir -p /www && dd if=/dev/urandom of=/www/blob bs=1024 count={BLOB_KB} 2>/dev/null"
        " && sha256sum /www/blob > /www/blob.sha && httpd -f -p 8080 -h /www"
    )
    manager_engine.services.create(
        IMAGE, ["sh", "-c", serve], name="blob-server", networks=[NETWORK],
        constraints=["node.hostname==worker-1"], endpoint_spec=EndpointSpec(mode="dnsrr"),
    )  # fmt: skip
    client, manager = aws_cluster.nodes["worker-2"], aws_cluster.nodes["manager"]

    def serving() -> bool:
        tasks = manager_engine.services.get("blob-server").tasks(
            filters={"desired-state": "running"}
        )
        return any(t["Status"]["State"] == "running" for t in tasks)

    wait_for("blob-server running on worker-1", serving, 120, manager.log)
    # busybox-static resolves with nslookup: its wget cannot look names up through glibc (and
    # crashes with -T, so the docker exec timeout bounds it).
    # The task runs before its server answers: ask for the checksum until it does.
    fetch = (
        "for _ in $(seq 60); do"
        ' ip=$(nslookup blob-server | awk "/^Address/ {a=\\$2} END {print a}");'
        " wget -q -O /tmp/sha http://$ip:8080/blob.sha && break; sleep 1; done;"
        " wget -q -O - http://$ip:8080/blob | sha256sum; cat /tmp/sha;"
        " cat /sys/class/net/eth0/mtu"
    )
    run = f"docker run --rm --network {NETWORK} {IMAGE} sh -c '{fetch}'"
    out = client.root(run, timeout=180).split()
    assert len(out) == 5, out
    fetched, served, overlay_mtu = out[0], out[2], int(out[4])
    assert fetched == served and len(fetched) == len(hashlib.sha256().hexdigest())
    underlay = json.loads(client.root("ip -j link show eth0"))[0]["mtu"]
    assert underlay == CLOUD_MIN_MTU
    print(f"overlay MTU {overlay_mtu} over an underlay of {underlay}")
