"""The Azure stack's nodes form the swarm themselves through the stack's Key Vault: nothing
reaches them over SSH (issue 11 item 2: a CI runner's address is not in `allowedCidrs`).

A manager and a worker boot the program's rendered user data against Azure's stand-ins
(azure_cloud.py: IMDS, Key Vault with the role assignments the program declares, strict, at
the names and addresses a VM reaches them at, over TLS). At first the vault grants nobody, as
while Azure propagates a new role assignment: both bootstraps fail loudly and systemd retries
them. Once the worker's role arrives it reads the deployer's placeholder and waits; once the
manager's does, the manager publishes the join token, the worker joins with it, the manager
labels the worker, reads the S3 gateway's keys into a root-only file, and publishes "done"
with its host key and VM id, which `pulumi up` waits for (infra/targets/azure_ready.py).

The manager's userData holds the program's trainer build request, with a small archive in the
place of training/ (a `FROM scratch` Dockerfile: the real one needs the internet): its build
timer downloads it from the blob stand-in with the data identity, checks it, builds it and
says so in the vault.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from contract.swarm import ROLE_LABEL
from infra import gateway
from infra.bootstrap import READY_FILE
from infra.bootstrap.join_store import HOST_KEY_FILE
from infra.bootstrap.spec import AZURE_READY_SECRET
from infra.bootstrap.trainer_build import BUILT_FILE, BUILT_SECRET, DOCKERFILE, TrainerBuild, digest
from infra.targets.azure_vault import JOIN_SECRET, PLACEHOLDER
from tests.nodes import harness
from tests.nodes.azure_cloud import AzureCloud
from tests.nodes.harness import Cluster, Node, wait_for
from tests.nodes.render import Rendered, SshKey, render

pytestmark = [pytest.mark.docker, pytest.mark.nodes, pytest.mark.timeout(900)]

SUBNET = "10.42.11.0/24"
ADDRESSES = {"manager": "10.42.11.10", "worker-1": "10.42.11.11"}
WAIT_S = 600
TRAINER = b"FROM scratch\nCOPY training/donkeycar/Dockerfile /Dockerfile\n"


def small_trainer(stack: Rendered) -> tuple[dict, bytes, dict[tuple[str, str], bytes]]:
    """The manager's build request as the program makes it, for a small archive of a
    Dockerfile at training/'s place; the request, the archive and the blob that holds it."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as compressed,  # the same bytes each time
        tarfile.open(fileobj=compressed, mode="w") as archive,
    ):
        info = tarfile.TarInfo(DOCKERFILE)
        info.size = len(TRAINER)
        archive.addfile(info, io.BytesIO(TRAINER))
    data = buffer.getvalue()
    vm = next(r for r in stack.run.of_type("azure-native:compute:VirtualMachine")
              if r.name.endswith("-manager"))  # fmt: skip
    request = json.loads(base64.b64decode(stack.run.raw_inputs[vm.urn]["userData"]))
    build = TrainerBuild(digest(data), request["tag"], tuple(request["buildArgs"].items()))
    request = json.loads(build.request(request["bucket"], request["identity"]))
    container = request["bucket"].split("/")[1]
    return request, data, {(container, build.object_name): data}


@dataclass
class AzureNodes:
    stack: Rendered
    cluster: Cluster
    cloud: AzureCloud

    def node(self, key: str) -> Node:
        return self.cluster.nodes[key]

    def calls(self, key: str, method: str, status: int) -> int:
        """How many of the node's own identity's `method` requests the vault answered with
        `status`."""
        identity = self.cloud.cloud.own_identity[key]
        return sum(
            1
            for m, _, s, who in self.cloud.vault()["log"]
            if (m, s, who) == (method, status, identity)
        )

    def log(self) -> str:
        return "".join(f"=== {k}\n{n.log()}" for k, n in self.cluster.nodes.items()) + (
            self.cloud.logs()
        )


@pytest.fixture(scope="module")
def azure_nodes(node_image: str, ssh_key: SshKey) -> Iterator[AzureNodes]:
    """Both nodes booted while the vault grants no role yet."""
    stack = render("azure", ssh_key, nodes={"count": 2}, deepracer={"opengl": False})
    cluster = harness.new_cluster(node_image, SUBNET, ssh_key)
    cloud = None
    request, _, blobs = small_trainer(stack)
    user_data = {"manager": base64.b64encode(json.dumps(request).encode()).decode()}
    try:
        cloud = AzureCloud.start(cluster, stack, blobs, user_data)
        cloud.grant(set(), {})
        for node in stack.nodes:
            cloud.boot(node.key, node.user_data, ADDRESSES[node.key])
        yield AzureNodes(stack, cluster, cloud)
    finally:
        if not harness.keep_nodes():
            cluster.down()
            if cloud is not None:
                cloud.down()


@pytest.fixture(scope="module")
def formed(azure_nodes: AzureNodes) -> AzureNodes:
    """The nodes once the vault grants what the program declares, and both are done."""
    azure_nodes.cloud.grant(azure_nodes.cloud.cloud.officers, azure_nodes.cloud.cloud.users)
    for node in azure_nodes.cluster.nodes.values():
        node.wait_bootstrapped()
    return azure_nodes


def test_without_their_roles_the_nodes_fail_loudly_retry_and_then_wait_for_the_token(
    azure_nodes: AzureNodes,
) -> None:
    nodes, cloud = azure_nodes, azure_nodes.cloud
    worker = nodes.node("worker-1")
    # Refused twice: the bootstrap failed, and systemd ran it again (BOOTSTRAP_RETRY_SECONDS).
    wait_for(
        "two refused reads", lambda: nodes.calls("worker-1", "GET", 403) >= 2, WAIT_S, nodes.log
    )
    wait_for("a refused write", lambda: nodes.calls("manager", "PUT", 403) >= 1, WAIT_S, nodes.log)
    journal = worker.root("journalctl --no-pager -u trackday-bootstrap")
    assert f"reading the join token from https://{cloud.cloud.vault_host}/secrets/" in journal
    assert "failed (HTTP 403): Caller is not authorized: secrets/get" in journal
    assert not worker.has(READY_FILE) and not nodes.node("manager").has(READY_FILE)
    # The worker's role arrives first: it reads the deployer's placeholder, and waits.
    cloud.grant(set(), cloud.cloud.users)
    wait_for("a read of the placeholder", lambda: nodes.calls("worker-1", "GET", 200) >= 2,
             WAIT_S, nodes.log)  # fmt: skip
    assert cloud.vault()["secrets"][JOIN_SECRET] == PLACEHOLDER
    assert worker.root("docker info --format '{{.Swarm.LocalNodeState}}'").strip() == "inactive"
    # Then the manager's: it publishes the token, and the worker joins.
    cloud.grant(cloud.cloud.officers, cloud.cloud.users)
    for node in nodes.cluster.nodes.values():
        node.wait_bootstrapped()
    assert nodes.calls("manager", "PUT", 200) >= 2  # the token, then "done"


def test_the_worker_joins_with_the_managers_token_and_the_manager_labels_it(
    formed: AzureNodes,
) -> None:
    manager, worker = formed.node("manager"), formed.node("worker-1")
    token = manager.root("docker swarm join-token --quiet worker").strip()
    published = json.loads(formed.cloud.vault()["secrets"][JOIN_SECRET])
    assert published == {"token": token, "manager": f"{manager.address}:2377"}

    def worker_labelled() -> bool:
        listing = manager.root("docker node ls --format '{{json .}}'").splitlines()
        return (
            len(listing) == 2
            and all(json.loads(n)["Status"] == "Ready" for n in listing)
            and (
                ROLE_LABEL
                in manager.root("docker node inspect worker-1 --format '{{json .Spec.Labels}}'")
            )
        )

    wait_for("the worker, joined and labelled", worker_labelled, WAIT_S, formed.log)
    spec = json.loads(manager.root("docker node inspect worker-1 --format '{{json .}}'"))
    assert spec["Spec"]["Labels"][ROLE_LABEL] == "simulation"
    assert spec["Status"]["Addr"] == worker.address
    assert spec["Spec"]["Role"] == "worker"
    # The token went through pipes: no log of the worker holds it.
    assert worker.root(f"journalctl --no-pager | grep -c -- {token} || true").strip() == "0"
    # The worker's identity only ever read the join secret.
    own = formed.cloud.cloud.own_identity["worker-1"]
    assert {(m, name) for m, name, _, who in formed.cloud.vault()["log"] if who == own} == {
        ("GET", JOIN_SECRET)
    }


def test_the_manager_publishes_done_with_its_host_key_and_vm_id(formed: AzureNodes) -> None:
    manager = formed.node("manager")
    ready = json.loads(formed.cloud.vault()["secrets"][AZURE_READY_SECRET])
    host_key = " ".join(manager.root(f"cat {HOST_KEY_FILE}").split()[:2])
    assert ready == {
        "bootstrap": "done",
        "hostKey": host_key,
        "vmId": formed.cloud.cloud.vms["manager"].vm_id,
    }


def test_the_gateway_keys_come_from_the_vault_into_a_root_only_file(formed: AzureNodes) -> None:
    manager = formed.node("manager")
    mode = manager.root(f"stat -c '%U:%G %a' {gateway.KEYS_FILE}").strip()
    assert mode == "root:root 600"
    keys = manager.root(f"cat {gateway.KEYS_FILE}")
    assert keys == formed.cloud.cloud.secrets["gateway-keys"]
    assert "RCLONE_AUTH_KEY=" in keys and keys not in formed.stack.node("manager").user_data
    assert manager.root(f"systemctl is-enabled {gateway.UNIT}").strip() == "enabled"


def test_the_manager_builds_the_requested_trainer_from_the_blob(formed: AzureNodes) -> None:
    manager = formed.node("manager")
    request, _, _ = small_trainer(formed.stack)

    def built() -> bool:
        return BUILT_SECRET in formed.cloud.vault()["secrets"]

    wait_for("the trainer build", built, WAIT_S, lambda: formed.log() + manager.root(
        "journalctl --no-pager -n 40 -u trackday-trainer-build", check=False))  # fmt: skip
    done = json.loads(formed.cloud.vault()["secrets"][BUILT_SECRET])
    assert done == {"digest": request["digest"], "vmId": formed.cloud.cloud.vms["manager"].vm_id}
    assert manager.root(f"cat {BUILT_FILE}").strip() == request["digest"]
    image_id = manager.root(f"docker image inspect --format '{{{{.Id}}}}' {request['tag']}")
    assert image_id.startswith("sha256:")
