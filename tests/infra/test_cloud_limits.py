"""Config limits are the clouds' own (infra/cloud_rules.py), not looser: issue 11 items 3-5."""

from __future__ import annotations

import pytest

from infra import cloud_rules
from infra.config import ConfigError, parse
from tests.infra.stacks import run_stack, with_keys

CIDRS = {"allowedCidrs": ["203.0.113.7/32"]}
AWS = {"target": "aws", "network": CIDRS}
AZURE = {"target": "azure", "network": CIDRS}
GCP_POOL = {"target": "gcp", "network": CIDRS, "gcp": {"project": "my-project-1", "nodePool": True}}


def _gcp(**gcp) -> dict:
    return {**GCP_POOL, "gcp": {**GCP_POOL["gcp"], **gcp}}


@pytest.mark.parametrize("days", [10, 0, 366, 3650])
def test_log_retention_outside_cloudwatchs_values_is_refused(days):
    with pytest.raises(ConfigError) as err:
        parse({**AWS, "aws": {"logging": True, "logRetentionDays": days}})
    assert str(err.value).startswith(f"trackday:aws.logRetentionDays: {days} is not valid; ")
    assert "1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400" in str(err.value)


@pytest.mark.parametrize("days", cloud_rules.CLOUDWATCH_RETENTION_DAYS)
def test_every_cloudwatch_value_is_accepted(days):
    assert parse({**AWS, "aws": {"logRetentionDays": days}}).aws.log_retention_days == days


def test_azure_keeps_deleted_data_at_most_365_days():
    with pytest.raises(ConfigError, match=r"keepDeletedDays: 366 is not valid; Azure keeps "):
        parse({**AZURE, "storage": {"keepDeletedDays": 366}})
    assert parse({**AZURE, "storage": {"keepDeletedDays": 365}}).storage.keep_deleted_days == 365
    # S3 and Cloud Storage lifecycle rules take longer periods.
    assert parse({**AWS, "storage": {"keepDeletedDays": 400}}).storage.keep_deleted_days == 400


@pytest.mark.parametrize(
    ("raw", "least"), [(AWS, 75), (GCP_POOL, 50)], ids=["aws", "gcp-node-pool"]
)
def test_root_volume_below_the_node_images_own_disk_is_refused(raw, least):
    wrong = rf"rootVolumeGb: {least - 1} is not valid; .* {least} GB"
    with pytest.raises(ConfigError, match=wrong):
        parse({**raw, "nodes": {"rootVolumeGb": least - 1}})
    assert parse({**raw, "nodes": {"rootVolumeGb": least}}).nodes.root_volume_gb == least


def test_vertex_only_gcp_stack_has_no_node_image_limit():
    raw = {"target": "gcp", "gcp": {"project": "my-project-1"}, "nodes": {"rootVolumeGb": 40}}
    assert parse(raw).nodes.root_volume_gb == 40


@pytest.mark.parametrize(
    ("region", "gpu", "zone"),
    [
        ("us-east1", "T4", "us-east1-c"),  # us-east1 has no "-a" zone
        ("europe-west1", "L4", "europe-west1-b"),  # nor has europe-west1
        ("us-central1", "T4", "us-central1-a"),
        ("us-east1", "A100", "us-east1-b"),
    ],
)
def test_default_zone_exists_and_has_the_gpu(region, gpu, zone):
    parsed = parse({**_gcp(region=region), "nodes": {"gpu": {"type": gpu}}})
    assert parsed.gcp.zone == zone
    letter = zone.rsplit("-", 1)[1]
    assert letter in cloud_rules.GCP_ZONES[region]
    assert letter in cloud_rules.GCP_GPU_ZONES[region][gpu]


def test_a_zone_that_does_not_exist_is_refused():
    wrong = r"gcp.zone: 'us-east1-a' is not valid; us-east1 has zones"
    with pytest.raises(ConfigError, match=wrong):
        parse(_gcp(region="us-east1", zone="us-east1-a"))


def test_a_zone_without_the_gpu_is_refused():
    with pytest.raises(ConfigError, match=r"us-east1-b has no T4 GPUs; T4 zones in us-east1: "):
        parse(_gcp(region="us-east1", zone="us-east1-b"))


def test_a_region_without_the_gpu_is_refused():
    with pytest.raises(ConfigError, match=r"europe-west1 offers no A100 GPUs"):
        parse({**_gcp(region="europe-west1"), "nodes": {"gpu": {"type": "A100"}}})


def test_a_region_outside_the_table_needs_its_zone():
    with pytest.raises(ConfigError, match=r"gcp.zone: \(missing\) is not valid; .*set gcp.zone"):
        parse(_gcp(region="asia-northeast3"))
    assert parse(_gcp(region="asia-northeast3", zone="asia-northeast3-b")).gcp.zone == (
        "asia-northeast3-b"
    )
    with pytest.raises(ConfigError, match=r"'us-east1-c' is not valid; .* not in region"):
        parse(_gcp(region="asia-northeast3", zone="us-east1-c"))


def test_the_zone_table_is_consistent():
    assert set(cloud_rules.GCP_GPU_ZONES) == set(cloud_rules.GCP_ZONES)
    for region, by_gpu in cloud_rules.GCP_GPU_ZONES.items():
        for zones in by_gpu.values():
            assert set(zones) <= set(cloud_rules.GCP_ZONES[region]), region


def test_node_pool_vms_go_to_the_resolved_zone():
    run = run_stack(
        "gcp", with_keys("gcp", gcp={"region": "us-east1", "nodePool": True}, network=CIDRS)
    )
    (vm,) = run.of_type("gcp:compute/instance:Instance")
    assert vm.inputs["zone"] == "us-east1-c"
    assert run.outputs["zone"].value == "us-east1-c"


def test_gcp_network_carries_docker_overlay_packets():
    """A new VPC's MTU is 1460; VXLAN adds 50 bytes to the overlay's 1450: the network must
    take 1500 (and stay within what GCP allows)."""
    run = run_stack("gcp", with_keys("gcp", gcp={"nodePool": True}, network=CIDRS))
    mtu = run.one("gcp:compute/network:Network").inputs.get("mtu", cloud_rules.GCP_DEFAULT_MTU)
    low, high = cloud_rules.GCP_MTU_RANGE
    assert low <= mtu <= high
    assert mtu - cloud_rules.VXLAN_OVERHEAD >= cloud_rules.DOCKER_OVERLAY_MTU


def test_a_newer_ami_with_a_larger_snapshot_is_caught_before_ec2_refuses_it():
    """The AMI found at `pulumi up` may outgrow the dated minimum: its own snapshot decides."""
    from types import SimpleNamespace

    from infra.targets import aws_nodes as aws_target

    def ami(size: str):
        root = SimpleNamespace(device_name="/dev/sda1", ebs={"volume_size": size})
        other = SimpleNamespace(device_name="/dev/sdb", ebs={"volume_size": "500"})
        return SimpleNamespace(
            id="ami-0abc",
            name="Deep Learning Base 2027",
            root_device_name="/dev/sda1",
            block_device_mappings=[other, root],
        )

    assert aws_target.checked_image(ami("75"), 100) == "ami-0abc"
    with pytest.raises(ConfigError, match=r"rootVolumeGb: 100 is not valid; .* 120 GB root"):
        aws_target.checked_image(ami("120"), 100)
    run = run_stack("aws", with_keys("aws", nodes={"rootVolumeGb": 80}))
    (node,) = run.of_type("aws:ec2/spotInstanceRequest:SpotInstanceRequest")
    assert node.inputs["ami"].startswith("ami-0")
