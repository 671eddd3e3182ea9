"""What the Pulumi program gives each cloud node, for the node tests.

The program runs offline under Pulumi's mocks (infra/offline.py), exactly as `trackday plan`
runs it, with one change: the pool's SSH key is a real one made here (the mocks' is only of the
right shape), so the test can log in to the nodes as trackday's own commands do. The user data
is taken from the resources the program declared, unchanged. Every cloud's nodes form the swarm
themselves (through Parameter Store, Key Vault or Secret Manager); the clouds' stand-ins take
what the program declared from `Rendered.run` (aws_api.py, azure_cloud.py).
"""

from __future__ import annotations

import base64
import gzip
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra import offline
from tests.infra.stacks import run_stack, with_keys


def _gunzip(inputs: dict) -> str:
    """AWS user data: gzipped, base64 for the API (infra/nodes.py gzip_base64)."""
    return gzip.decompress(base64.b64decode(inputs["userDataBase64"])).decode()


_INSTANCE_TYPES = {
    "aws:ec2/instance:Instance": _gunzip,
    # The shipped aws stack's nodes are persistent spot requests (infra/targets/aws.py).
    "aws:ec2/spotInstanceRequest:SpotInstanceRequest": _gunzip,
    "azure-native:compute:VirtualMachine": lambda inputs: base64.b64decode(
        inputs["osProfile"]["customData"]
    ).decode(),
}


@dataclass(frozen=True)
class SshKey:
    private_key: Path
    public_key: str


@dataclass(frozen=True)
class RenderedNode:
    """One VM the program declares: `key` is its name in the pool ("manager", "worker-1")."""

    key: str
    role: str
    user_data: str


@dataclass(frozen=True)
class Rendered:
    nodes: list[RenderedNode]
    outputs: dict[str, Any]
    run: offline.OfflineRun

    def node(self, key: str) -> RenderedNode:
        return next(n for n in self.nodes if n.key == key)


def make_ssh_key(folder: Path) -> SshKey:
    """An ed25519 key pair, as the program's tls.PrivateKey makes one."""
    path = folder / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "trackday-nodes-test", "-f", path],
        check=True,
    )
    return SshKey(path, path.with_suffix(".pub").read_text().strip())


def render(stack: str, key: SshKey, **changes: Any) -> Rendered:
    """Run the program for a shipped stack (`changes` to its sections); collect its nodes."""
    real_key = {
        "publicKeyOpenssh": key.public_key + "\n",
        "privateKeyOpenssh": key.private_key.read_text(),
        "privateKeyPem": "",
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(offline._COMPUTED, "tls:index/privateKey:PrivateKey", lambda n, s: real_key)
        run = run_stack(stack, with_keys(stack, **changes))
    nodes = []
    for resource in run.resources:
        user_data = _INSTANCE_TYPES.get(resource.type)
        if user_data is not None:
            key_name = pool_key(resource.name)
            role = "manager" if key_name == "manager" else "worker"
            nodes.append(RenderedNode(key_name, role, user_data(run.raw_inputs[resource.urn])))
    if not nodes:
        raise AssertionError(f"stack {stack} declares no node")
    outputs = {name: output.value for name, output in run.outputs.items()}
    return Rendered(nodes, outputs, run)


def pool_key(resource_name: str) -> str:
    """ "trackday-aws-nodes-worker-1" -> "worker-1"."""
    for key in ("manager", "worker-"):
        if key in resource_name:
            return resource_name[resource_name.index(key) :]
    raise AssertionError(f"node {resource_name} is neither manager nor worker")
