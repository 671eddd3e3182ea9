"""The `aws` stack as shipped, under Pulumi's mocks: resources and their security properties."""

from __future__ import annotations

import base64
import gzip
import json

import pytest

from infra import offline
from infra.config import ConfigError
from infra.targets import aws_nodes as aws_target
from tests.infra.stacks import plain_secret_leaks, run_stack, shipped_values, with_keys

BUCKET = "aws:s3/bucket:Bucket"
INSTANCE = "aws:ec2/instance:Instance"
SPOT = "aws:ec2/spotInstanceRequest:SpotInstanceRequest"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"


@pytest.fixture(scope="module")
def aws():
    return run_stack("aws", shipped_values("aws"))


def test_bucket_is_private_encrypted_versioned_and_kept_by_destroy(aws):
    bucket = aws.one(BUCKET)
    assert bucket.retain_on_delete and not bucket.protect
    assert bucket.inputs["forceDestroy"] is False
    bucket_id = f"{bucket.name}-id"
    block = aws.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert block == {
        "bucket": bucket_id,
        "blockPublicAcls": True,
        "blockPublicPolicy": True,
        "ignorePublicAcls": True,
        "restrictPublicBuckets": True,
    }
    encryption = aws.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    ).inputs
    assert encryption["bucket"] == bucket_id
    assert encryption["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    versioning = aws.one("aws:s3/bucketVersioning:BucketVersioning").inputs
    assert versioning == {"bucket": bucket_id, "versioningConfiguration": {"status": "Enabled"}}


def test_bucket_policy_refuses_requests_without_tls(aws):
    policy = aws.one("aws:s3/bucketPolicy:BucketPolicy").inputs
    assert policy["bucket"] == f"{aws.one(BUCKET).name}-id"
    (statement,) = json.loads(policy["policy"])["Statement"]
    arn = f"arn:aws:s3:::{aws.one(BUCKET).name}"
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Action"] == "s3:*"
    assert statement["Resource"] == [arn, f"{arn}/*"]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_stack_may_opt_out_of_protection():
    run = run_stack("aws", with_keys("aws", storage={"protect": False}))
    bucket = run.one(BUCKET)
    assert not bucket.protect and not bucket.retain_on_delete
    # S3 refuses to delete a bucket holding objects: the opted-out bucket goes with them.
    assert bucket.inputs["forceDestroy"] is True


def test_node_role_may_use_only_this_bucket_and_has_no_key(aws):
    trust = json.loads(aws.one("aws:iam/role:Role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    statements = json.loads(aws.one(ROLE_POLICY).inputs["policy"])["Statement"]
    arn = f"arn:aws:s3:::{aws.one(BUCKET).name}"
    # Besides the bucket, only the swarm's parameters (test_join_store_aws.py says which).
    statements = [s for s in statements if not s["Action"][0].startswith("ssm:")]
    assert {s["Resource"] for s in statements} == {arn, f"{arn}/*"}
    assert all(action.startswith("s3:") for s in statements for action in s["Action"])
    assert "s3:*" not in [a for s in statements for a in s["Action"]]
    assert aws.of_type("aws:iam/accessKey:AccessKey") == []
    assert aws.of_type("aws:cloudwatch/logGroup:LogGroup") == []
    profile = aws.one("aws:iam/instanceProfile:InstanceProfile")
    assert profile.inputs["role"] == aws.one("aws:iam/role:Role").name
    assert {i.inputs["iamInstanceProfile"] for i in aws.of_type(SPOT)} == {profile.name}


def test_logging_adds_its_log_group_and_only_that_to_the_role():
    run = run_stack("aws", with_keys("aws", aws={"logging": True, "logRetentionDays": 7}))
    group = run.one("aws:cloudwatch/logGroup:LogGroup")
    assert group.inputs["retentionInDays"] == 7
    statements = json.loads(run.one(ROLE_POLICY).inputs["policy"])["Statement"]
    logs = [s for s in statements if any(a.startswith("logs:") for a in s["Action"])]
    assert [s["Resource"] for s in logs] == [
        f"arn:aws:logs:us-east-1:123456789012:log-group:{group.name}:*"
    ]
    # The DeepRacer services are told the group (they may not create one).
    assert run.outputs["logGroup"].value == group.name
    assert not any("logs:CreateLogGroup" in s["Action"] for s in logs)


def test_no_log_group_output_without_logging(aws):
    assert "logGroup" not in aws.outputs


def test_admin_ports_only_from_allowed_cidrs_and_swarm_ports_only_between_nodes(aws):
    group = aws.one(SECURITY_GROUP).inputs
    admin = [r for r in group["ingress"] if r.get("cidrBlocks")]
    assert sorted((r["protocol"], r["fromPort"], r["toPort"]) for r in admin) == [
        ("tcp", 22, 22),
    ]
    assert all(r["cidrBlocks"] == ["203.0.113.7/32"] for r in admin)
    swarm = [r for r in group["ingress"] if not r.get("cidrBlocks")]
    assert sorted((r["protocol"], r["fromPort"]) for r in swarm) == [
        ("tcp", 2377),
        ("tcp", 7946),
        ("udp", 4789),
        ("udp", 7946),
    ]
    assert all(r["self"] is True and r["fromPort"] == r["toPort"] for r in swarm)
    assert all(i.inputs["vpcSecurityGroupIds"] == [f"{aws.one(SECURITY_GROUP).name}-id"]
               for i in aws.of_type(SPOT))  # fmt: skip


def test_nodes_run_the_looked_up_ami_with_imdsv2_spot_and_the_configured_disk(aws):
    assert aws.of_type(INSTANCE) == []
    (node,) = aws.of_type(SPOT)
    assert node.inputs["ami"].startswith("ami-0")
    assert node.inputs["instanceType"] == "g4dn.2xlarge"
    assert node.inputs["metadataOptions"]["httpTokens"] == "required"
    assert node.inputs["rootBlockDevice"] == {
        "volumeSize": 150,
        "volumeType": "gp3",
        "encrypted": True,
        "deleteOnTermination": True,
    }
    # A persistent request that stops its instance on interruption; `pulumi destroy`
    # cancels it before terminating the instance, so nothing relaunches a GPU node.
    assert node.inputs["spotType"] == "persistent"
    assert node.inputs["instanceInterruptionBehavior"] == "stop"
    assert node.inputs["waitForFulfillment"] is True
    assert node.inputs["instanceInitiatedShutdownBehavior"] == "stop"
    # Gzipped: EC2 takes at most 16 KiB before base64 (the spot watcher made the text larger).
    packed = base64.b64decode(node.inputs["userDataBase64"])
    assert len(packed) < 16 * 1024
    data = gzip.decompress(packed).decode()
    assert data.startswith("#cloud-config\n")
    assert "trackday-ttl.timer" in data and "docker swarm init" in data


def test_on_demand_other_gpus_and_a_spot_price_cap():
    run = run_stack("aws", with_keys("aws", nodes={"spot": False, "gpu": {"type": "L4"}}))
    node = run.one(INSTANCE).inputs
    assert node["instanceType"] == "g6.2xlarge"
    assert "instanceMarketOptions" not in node and run.of_type(SPOT) == []
    assert node["metadataOptions"]["httpTokens"] == "required"
    g5 = {"machineType": "g5.xlarge", "gpu": {"type": "A10G"}, "spotMaxPrice": 0.4}
    capped = run_stack("aws", with_keys("aws", nodes=g5))
    assert capped.one(SPOT).inputs["instanceType"] == "g5.xlarge"
    assert capped.one(SPOT).inputs["spotPrice"] == "0.4"


@pytest.mark.parametrize("spot", [True, False])
def test_the_manager_keeps_one_address_across_stops(spot):
    run = run_stack("aws", with_keys("aws", nodes={"count": 3, "spot": spot}))
    (eip,) = run.of_type("aws:ec2/eip:Eip")
    nodes = run.of_type(SPOT if spot else INSTANCE)
    manager = next(n for n in nodes if n.name.endswith("manager"))
    expected = f"i-0{offline._digest(manager.name)[:16]}" if spot else f"{manager.name}-id"
    assert eip.inputs["instance"] == expected
    assert eip.inputs["domain"] == "vpc"
    assert run.outputs["managerAddress"].value.startswith("203.0.113.")


def test_ami_lookup_asks_amazon_for_the_deep_learning_base_gpu_ami():
    assert aws_target.AMI_OWNER == "amazon"
    assert aws_target.AMI_NAME.startswith("Deep Learning Base OSS Nvidia Driver GPU AMI")


def test_outputs_give_submit_what_it_needs_and_keep_the_key_secret(aws):
    outputs = {k: o.value for k, o in aws.outputs.items()}
    assert outputs["target"] == "aws"
    assert outputs["bucketUrl"] == outputs["nodeBucketUrl"] == f"s3://{aws.one(BUCKET).name}"
    assert outputs["s3Endpoint"] == "https://s3.us-east-1.amazonaws.com"
    assert outputs["sshUser"] == "trackday"
    assert outputs["managerAddress"].startswith("203.0.113."), "the Elastic IP"
    assert outputs["image"] == "trackday-donkeycar:5.3.0"
    assert outputs["training"]["donkeycarVersion"] == "5.3.0"
    secret = {k for k, o in aws.outputs.items() if o.secret}
    assert secret == {"sshPrivateKey"}
    assert "PRIVATE KEY" in outputs["sshPrivateKey"]
    assert plain_secret_leaks(aws) == []


def test_every_resource_sits_in_a_component_named_after_it(aws):
    by_urn = {r.urn: r for r in aws.resources}
    for resource in aws.resources:
        if resource.type == "trackday:targets:Aws":
            continue
        parent = by_urn[resource.parent]
        assert parent.type.startswith("trackday:"), resource.name
        assert resource.name.startswith(f"{parent.name}-"), resource.name


@pytest.mark.parametrize(
    ("network", "message"),
    [
        ({"allowedCidrs": []}, r"network.allowedCidrs: \[\] is not valid; the aws target needs"),
        ({"allowedCidrs": ["0.0.0.0/0"]}, r"opens to the whole internet"),
    ],
)
def test_nodes_need_a_narrow_allowed_range(network, message):
    values = {**shipped_values("aws"), "trackday:network": network}
    with pytest.raises(ConfigError, match=message):
        run_stack("aws", values)


def test_unknown_machine_is_refused():
    with pytest.raises(ConfigError, match=r"nodes.machineType: 'p3.2xlarge' is not valid"):
        run_stack("aws", with_keys("aws", nodes={"machineType": "p3.2xlarge"}))
