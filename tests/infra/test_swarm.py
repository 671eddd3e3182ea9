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
# Clouds whose nodes do not form the swarm themselves yet (gcp's and azure's do:
# test_join_store.py, test_join_store_azure.py; their managers build the trainer too).
OVER_SSH: set[str] = set()
NETWORK = {"allowedCidrs": ["203.0.113.7/32"]}


def _run(cloud: str, count: int):
    return run_stack(
        cloud, with_keys(cloud, nodes={"count": count}, network=NETWORK, **POOL[cloud])
    )


@pytest.fixture(scope="module", params=[(c, n) for c in VMS for n in (1, 5)], ids=str)
def swarm(request):
    cloud, count = request.param
    return cloud, count, _run(cloud, count)


def _commands(run, suffix: str) -> list:
    return sorted(
        (c for c in run.of_type(COMMAND) if c.name.endswith(suffix)), key=lambda c: c.name
    )


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


def test_workers_join_with_the_token_on_stdin_and_are_labelled_from_the_manager(swarm):
    cloud, count, run = swarm
    if cloud not in OVER_SSH:
        assert _commands(run, "-join-token") == _commands(run, "-join") == []
        return
    (token,) = _commands(run, "-join-token")
    assert token.inputs["logging"] == "stderr"  # stdout is the token: never in the logs
    joins = _commands(run, "-join")
    labels = _commands(run, "-labels")
    assert len(joins) == len(labels) == count - 1
    manager_private = run.outputs["managerPrivateAddress"].value
    manager_public = run.outputs["managerAddress"].value
    token_value = run.raw_inputs[joins[0].urn]["stdin"] if joins else None
    for join, label in zip(joins, labels, strict=True):
        assert set(join.secret_inputs) == {"stdin", "connection"}
        raw = run.raw_inputs[join.urn]
        assert raw["stdin"] == token_value  # the token the manager printed, the same for all
        assert f"{manager_private}:{bootstrap.SWARM_PORT}" in join.inputs["create"]
        assert raw["connection"]["host"] != manager_public  # run on the worker itself
        assert run.raw_inputs[label.urn]["connection"]["host"] == manager_public
        assert f"{ROLE_LABEL}={services.SIMULATION_ROLE}" in label.inputs["create"]
    if token_value is not None:
        # The token (the join-token command's stdout) is a secret wherever it goes.
        assert all(token_value.strip() not in repr(r.inputs) for r in run.resources)


def test_ssh_key_is_secret_in_every_connection_and_output(swarm):
    _cloud, _count, run = swarm
    key = run.outputs["sshPrivateKey"]
    assert key.secret and "PRIVATE KEY" in key.value
    for command in run.of_type(COMMAND) + run.of_type("command:remote:CopyToRemote"):
        assert "connection" in command.secret_inputs, command.name
        assert run.raw_inputs[command.urn]["connection"]["privateKey"] == key.value
        assert run.raw_inputs[command.urn]["connection"]["user"] == "trackday"
    assert plain_secret_leaks(run) == []
    public_key = run.one("tls:index/privateKey:PrivateKey")
    assert public_key.inputs == {"algorithm": "ED25519"}


def test_manager_host_key_is_recorded_for_submit_to_check(swarm):
    cloud, _count, run = swarm
    host_key = run.outputs["managerHostKey"]
    assert host_key.value.startswith("ssh-ed25519 ") and not host_key.secret
    if cloud == "gcp":
        # Through the Compute API: what the VM published in its guest attributes.
        assert _commands(run, "-manager-host-key") == []
        manager = next(vm for vm in run.of_type(VMS[cloud]) if vm.name.endswith("-manager"))
        assert manager.inputs["metadata"]["enable-guest-attributes"] == "TRUE"
        return
    # azure and aws: through the store, what the manager published with its "done".
    assert _commands(run, "-manager-host-key") == []
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


def test_trainer_image_is_built_on_the_manager_after_its_bootstrap(swarm):
    cloud, _count, run = swarm
    if cloud not in OVER_SSH:  # the manager builds it itself: test_join_store*.py
        assert _commands(run, "-trainer-build") == []
        return
    (build,) = _commands(run, "-trainer-build")
    assert "docker build" in build.inputs["create"]
    assert "--tag trackday-donkeycar:5.3.0" in build.inputs["create"]
    assert run.raw_inputs[build.urn]["connection"]["host"] == run.outputs["managerAddress"].value
    copy = run.one("command:remote:CopyToRemote")
    assert copy.inputs["source"]["fileArchive"].endswith("/training")


def test_a_swarm_needs_a_node():
    values = with_keys("aws", nodes={"count": 0})
    with pytest.raises(ConfigError, match=r"nodes.count: 0 is not valid; Input should be greater"):
        run_stack("aws", values)


def test_shipped_gcp_stack_has_no_swarm():
    run = run_stack("gcp", shipped_values("gcp"))
    assert run.of_type(COMMAND) == []
    assert "sshPrivateKey" not in run.outputs
