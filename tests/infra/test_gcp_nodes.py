"""The gcp node pool (`gcp.nodePool`) under Pulumi's mocks: GPU VMs, firewall, identity."""

from __future__ import annotations

import pytest

from infra.config import ConfigError
from tests.infra.stacks import plain_secret_leaks, run_stack, shipped_values, with_keys

INSTANCE = "gcp:compute/instance:Instance"
FIREWALL = "gcp:compute/firewall:Firewall"
POOL = {"gcp": {"nodePool": True}, "network": {"allowedCidrs": ["203.0.113.7/32"]}}


@pytest.fixture(scope="module")
def gcp():
    return run_stack("gcp", with_keys("gcp", **POOL))


def test_shipped_stack_declares_no_vm():
    run = run_stack("gcp", shipped_values("gcp"))
    assert run.of_type(INSTANCE) == [] and run.of_type(FIREWALL) == []


def test_pool_needs_the_allowed_ranges():
    with pytest.raises(ConfigError, match=r"network.allowedCidrs: \[\] is not valid; the gcp"):
        run_stack("gcp", with_keys("gcp", gcp={"nodePool": True}))


def test_vm_has_its_t4_stops_for_maintenance_and_runs_as_the_trainer(gcp):
    (vm,) = gcp.of_type(INSTANCE)
    inputs = vm.inputs
    assert inputs["machineType"] == "n1-standard-8"
    assert inputs["guestAccelerators"] == [{"type": "nvidia-tesla-t4", "count": 1}]
    assert inputs["scheduling"] == {
        "provisioningModel": "STANDARD",
        "automaticRestart": True,
        "onHostMaintenance": "TERMINATE",
    }
    assert inputs["serviceAccount"] == {
        "email": gcp.outputs["trainerServiceAccount"].value,
        "scopes": ["cloud-platform"],
    }
    assert inputs["bootDisk"]["initializeParams"]["size"] == 100
    assert "deeplearning-platform-release" in inputs["bootDisk"]["initializeParams"]["image"]
    assert inputs["metadata"]["install-nvidia-driver"] == "True"
    assert inputs["metadata"]["user-data"].startswith("#cloud-config\n")
    assert inputs["tags"] == ["trackday-node"]
    assert inputs["zone"] == "us-central1-a"


def test_spot_vms_and_built_in_gpus():
    run = run_stack("gcp", with_keys("gcp", **POOL, nodes={"spot": True, "gpu": {"type": "L4"}}))
    (vm,) = run.of_type(INSTANCE)
    assert vm.inputs["machineType"] == "g2-standard-8"
    assert "guestAccelerators" not in vm.inputs  # g2 machines come with their L4
    assert vm.inputs["scheduling"] == {
        "provisioningModel": "SPOT",
        "preemptible": True,
        "automaticRestart": False,
        "onHostMaintenance": "TERMINATE",
        "instanceTerminationAction": "STOP",
    }


def test_firewall_admin_from_allowed_ranges_swarm_between_nodes_only(gcp):
    rules = {r.name.rsplit("-", 1)[-1]: r.inputs for r in gcp.of_type(FIREWALL)}
    assert rules["admin"]["sourceRanges"] == ["203.0.113.7/32"]
    assert rules["admin"]["allows"] == [{"protocol": "tcp", "ports": ["22"]}]
    assert rules["admin"]["targetTags"] == ["trackday-node"]
    swarm = rules["swarm"]
    assert "sourceRanges" not in swarm
    assert swarm["sourceTags"] == swarm["targetTags"] == ["trackday-node"]
    assert swarm["allows"] == [
        {"protocol": "tcp", "ports": ["2377", "7946"]},
        {"protocol": "udp", "ports": ["7946", "4789"]},
    ]


def test_compute_api_is_enabled_and_outputs_reach_the_swarm(gcp):
    services = {s.inputs["service"] for s in gcp.of_type("gcp:projects/service:Service")}
    assert "compute.googleapis.com" in services
    outputs = gcp.outputs
    assert outputs["sshPrivateKey"].secret
    assert outputs["nodeBucketUrl"].value == outputs["bucketUrl"].value  # gs://, by identity
    assert "s3Endpoint" not in outputs
    assert outputs["image"].value.startswith("us-central1-docker.pkg.dev/")  # Vertex AI's
    assert outputs["swarmImage"].value == "trackday-donkeycar:5.3.0"
    assert plain_secret_leaks(gcp) == []


def test_the_manager_keeps_one_static_address():
    run = run_stack(
        "gcp",
        with_keys(
            "gcp",
            gcp={"nodePool": True, "region": "us-east1"},
            nodes={"count": 2},
            network={"allowedCidrs": ["203.0.113.7/32"]},
        ),
    )
    (address,) = run.of_type("gcp:compute/address:Address")
    assert address.inputs["region"] == "us-east1"
    assert address.inputs["addressType"] == "EXTERNAL"
    vms = {vm.name.rsplit("-", 1)[-1]: vm for vm in run.of_type("gcp:compute/instance:Instance")}
    (config,) = vms["manager"].inputs["networkInterfaces"][0]["accessConfigs"]
    assert config["natIp"] == run.outputs["managerAddress"].value
    assert run.outputs["managerAddress"].value.startswith("203.0.113.")
    assert "natIp" not in vms["1"].inputs["networkInterfaces"][0]["accessConfigs"][0]
