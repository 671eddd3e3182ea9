"""The swarm over each cloud's nodes, under Pulumi's mocks, for 1 and 5 nodes: who joins whom,
with which labels, and that the join token and the SSH key stay secrets everywhere."""

from __future__ import annotations

import base64
import gzip

import pytest
import yaml

from contract.swarm import ROLE_LABEL
from infra import bootstrap
from infra.config import ConfigError
from tests.infra.stacks import plain_secret_leaks, run_stack, shipped_values, with_keys
from training.deepracer import services

COMMAND = "command:remote:Command"
VMS = {
    # The shipped aws stack is spot: its nodes are persistent spot requests.
    "aws": "aws:ec2/spotInstanceRequest:SpotInstanceRequest",
    "azure": "azure-native:compute:VirtualMachine",
    "gcp": "gcp:compute/instance:Instance",
}
POOL = {"aws": {}, "azure": {}, "gcp": {"gcp": {"nodePool": True}}}
NETWORK = {"allowedCidrs": ["203.0.113.7/32"]}


def _run(cloud: str, count: int):
    return run_stack(
        cloud, with_keys(cloud, nodes={"count": count}, network=NETWORK, **POOL[cloud])
    )


@pytest.fixture(scope="module", params=[(c, n) for c in VMS for n in (1, 5)], ids=str)
def swarm(request):
    cloud, count = request.param
    return cloud, count, _run(cloud, count)


def _user_data(cloud: str, vm) -> str:
    if cloud == "aws":
        return gzip.decompress(base64.b64decode(vm.inputs["userDataBase64"])).decode()
    if cloud == "azure":
        return base64.b64decode(vm.inputs["osProfile"]["customData"]).decode()
    return vm.inputs["metadata"]["user-data"]


def test_one_manager_and_the_rest_workers(swarm):
    cloud, count, run = swarm
    vms = run.of_type(VMS[cloud])
    assert len(vms) == count
    documents = {
        vm.name.split("-nodes-", 1)[1]: yaml.safe_load(_user_data(cloud, vm)) for vm in vms
    }
    assert sorted(documents) == ["manager"] + [f"worker-{i}" for i in range(1, count)]
    for name, document in documents.items():
        script = next(
            f["content"] for f in document["write_files"] if f["path"] == bootstrap.BOOTSTRAP_SCRIPT
        )
        assert ("docker swarm init" in script) == (name == "manager"), name
    manager_script = next(
        f["content"]
        for f in documents["manager"]["write_files"]
        if f["path"] == bootstrap.BOOTSTRAP_SCRIPT
    )
    assert f"--label-add {ROLE_LABEL}={services.TRAINER_ROLE}" in manager_script
    assert run.outputs["nodeCount"].value == count


def test_ssh_key_is_secret_in_every_connection_and_output(swarm):
    _cloud, _count, run = swarm
    key = run.outputs["sshPrivateKey"]
    assert key.secret and "PRIVATE KEY" in key.value
    # Every cloud's nodes form the swarm themselves (test_join_store*.py): no SSH command,
    # no copy, the key goes nowhere but the output.
    assert [r for r in run.resources if r.type.startswith("command:")] == []
    assert plain_secret_leaks(run) == []
    public_key = run.one("tls:index/privateKey:PrivateKey")
    assert public_key.inputs == {"algorithm": "ED25519"}


def test_manager_host_key_is_recorded_for_submit_to_check(swarm):
    cloud, _count, run = swarm
    host_key = run.outputs["managerHostKey"]
    assert host_key.value.startswith("ssh-ed25519 ") and not host_key.secret
    if cloud == "gcp":
        # Through the Compute API: what the VM published in its guest attributes.
        manager = next(vm for vm in run.of_type(VMS[cloud]) if vm.name.endswith("-manager"))
        assert manager.inputs["metadata"]["enable-guest-attributes"] == "TRUE"
        return
    # azure and aws: through the store, what the manager published with its "done".
    ready = next(
        r for r in run.of_type("pulumi-python:dynamic:Resource") if r.name.endswith("-ready")
    )
    where = ready.inputs["secret" if cloud == "azure" else "parameter"]
    assert where.endswith("/trackday-ready")


def test_gcp_host_key_comes_from_the_guests_hostkeys_attribute():
    from infra.targets import gcp_nodes as gcp_target

    published = [
        {"namespace": "hostkeys", "key": "ssh-rsa", "value": "AAAAB3Nza"},
        {"namespace": "hostkeys", "key": "ssh-ed25519", "value": "AAAAC3NzaC1lZDI1NTE5AAAAIx\n"},
    ]
    assert gcp_target.host_key_line(published) == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIx"
    with pytest.raises(ValueError, match=r"published no ssh-ed25519 host key .* `pulumi up`"):
        gcp_target.host_key_line(published[:1])


def test_a_swarm_needs_a_node():
    values = with_keys("aws", nodes={"count": 0})
    with pytest.raises(ConfigError, match=r"nodes.count: 0 is not valid; Input should be greater"):
        run_stack("aws", values)


def test_shipped_gcp_stack_has_no_swarm():
    run = run_stack("gcp", shipped_values("gcp"))
    assert run.of_type(COMMAND) == []
    assert "sshPrivateKey" not in run.outputs
