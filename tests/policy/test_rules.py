"""Each policy on a compliant and a violating resource, with the providers' own types and inputs."""

from __future__ import annotations

import base64

import pytest

from infra.config import parse
from policy import rules
from policy.rules import Resource, Settings, settings_for

SETTINGS = Settings()
PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
NSG = "azure-native:network:NetworkSecurityGroup"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _res(type_: str, **inputs) -> Resource:
    return Resource(type_, "r", inputs)


GCS_OK = {
    "uniformBucketLevelAccess": True,
    "publicAccessPrevention": "enforced",
    "versioning": {"enabled": True},
}
AZURE_ACCOUNT_OK = {
    "allowBlobPublicAccess": False,
    "enableHttpsTrafficOnly": True,
    "minimumTlsVersion": "TLS1_2",
}
ALL_BLOCKED = dict.fromkeys(
    ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"), True
)
SSE = "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2"
# trackday's power-off timer as infra/bootstrap/ writes it: the timer, its service, enabled.
CLOUD_INIT_TTL = """#cloud-config
write_files:
- path: /etc/systemd/system/trackday-ttl.timer
  content: |
    [Timer]
    OnBootSec=240min
- path: /etc/systemd/system/trackday-ttl.service
  content: |
    [Service]
    ExecStart=/usr/local/sbin/trackday-poweroff
runcmd:
- [systemctl, enable, --now, trackday-ttl.timer]
"""
# The timer's name where it does nothing: a comment, an echo, a file never started.
FAKE_TTLS = [
    "#cloud-config\n# systemctl enable trackday-ttl.timer\n",
    "#cloud-config\nruncmd: [echo systemctl start trackday-ttl.timer]\n",
    "#cloud-config\nruncmd: [systemctl start trackday-ttl.timer]\n",
    CLOUD_INIT_TTL.replace("- [systemctl, enable, --now, trackday-ttl.timer]", "- [true]"),
    "#!/bin/sh\nsystemctl enable --now trackday-ttl.timer\n",
]
SSH_FROM = {"direction": "Inbound", "access": "Allow", "destinationPortRange": "22"}
IN_VNET = {**SSH_FROM, "protocol": "Tcp", "sourceAddressPrefix": "VirtualNetwork"}

# (rule, type, compliant inputs, violating inputs, part of the violation message)
CASES = [
    (
        rules.private_buckets,
        "gcp:storage/bucket:Bucket",
        GCS_OK,
        {**GCS_OK, "publicAccessPrevention": "inherited"},
        "publicAccessPrevention",
    ),
    (
        rules.private_buckets,
        "gcp:storage/bucket:Bucket",
        GCS_OK,
        {**GCS_OK, "versioning": {"enabled": False}},
        "versioning.enabled",
    ),
    (
        rules.private_buckets,
        "gcp:storage/bucketIAMMember:BucketIAMMember",
        {
            "role": "roles/storage.objectUser",
            "member": "serviceAccount:t@p.iam.gserviceaccount.com",
        },
        {"role": "roles/storage.objectViewer", "member": "allUsers"},
        "the public",
    ),
    (
        rules.private_buckets,
        "gcp:storage/bucketAccessControl:BucketAccessControl",
        {"entity": "user-a@example.com", "role": "READER"},
        {"entity": "allUsers", "role": "READER"},
        "allUsers",
    ),
    (
        rules.private_buckets,
        PAB,
        ALL_BLOCKED,
        {**ALL_BLOCKED, "restrictPublicBuckets": False},
        "restrictPublicBuckets must be true",
    ),
    (
        rules.private_buckets,
        "aws:s3/bucketVersioning:BucketVersioning",
        {"versioningConfiguration": {"status": "Enabled"}},
        {"versioningConfiguration": {"status": "Suspended"}},
        'status must be "Enabled"',
    ),
    (
        rules.private_buckets,
        SSE,
        {"rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms"}}]},
        {"rules": []},
        "sseAlgorithm",
    ),
    (
        rules.private_buckets,
        "aws:s3/bucketAclV2:BucketAclV2",
        {"acl": "private"},
        {"acl": "public-read"},
        "acl public-read",
    ),
    (
        rules.private_buckets,
        "azure-native:storage:StorageAccount",
        AZURE_ACCOUNT_OK,
        {**AZURE_ACCOUNT_OK, "allowBlobPublicAccess": True},
        "allowBlobPublicAccess",
    ),
    (
        rules.private_buckets,
        "azure-native:storage:StorageAccount",
        AZURE_ACCOUNT_OK,
        {**AZURE_ACCOUNT_OK, "minimumTlsVersion": "TLS1_0"},
        "minimumTlsVersion",
    ),
    (
        rules.private_buckets,
        "azure-native:storage:BlobContainer",
        {"publicAccess": "None"},
        {"publicAccess": "Blob"},
        "publicAccess Blob",
    ),
    (
        rules.private_buckets,
        "azure-native:storage:BlobServiceProperties",
        {"isVersioningEnabled": True},
        {"isVersioningEnabled": False},
        "isVersioningEnabled",
    ),
    (
        rules.no_open_admin_ingress,
        "aws:ec2/securityGroup:SecurityGroup",
        {
            "ingress": [
                {"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["203.0.113.7/32"]}
            ]
        },
        {
            "ingress": [
                {"protocol": "tcp", "fromPort": 22, "toPort": 22, "cidrBlocks": ["0.0.0.0/0"]}
            ]
        },
        "opens SSH (port 22) to 0.0.0.0/0",
    ),
    (
        rules.no_open_admin_ingress,
        "aws:ec2/securityGroup:SecurityGroup",
        {"ingress": [{"protocol": "-1", "fromPort": 0, "toPort": 0, "self": True}]},
        {"ingress": [{"protocol": "-1", "fromPort": 0, "toPort": 0, "ipv6CidrBlocks": ["::/0"]}]},
        "the Docker API (port 2375) to ::/0",
    ),
    (
        rules.no_open_admin_ingress,
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        {"ipProtocol": "tcp", "fromPort": 443, "toPort": 443, "cidrIpv4": "0.0.0.0/0"},
        {"ipProtocol": "tcp", "fromPort": 9000, "toPort": 9000, "cidrIpv4": "0.0.0.0/0"},
        "the S3 endpoint (port 9000)",
    ),
    (
        rules.no_open_admin_ingress,
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        {
            "type": "egress",
            "protocol": "-1",
            "fromPort": 0,
            "toPort": 0,
            "cidrBlocks": ["0.0.0.0/0"],
        },
        {
            "type": "ingress",
            "protocol": "tcp",
            "fromPort": 2376,
            "toPort": 2376,
            "cidrBlocks": ["0.0.0.0/0"],
        },
        "port 2376",
    ),
    (
        rules.no_open_admin_ingress,
        "gcp:compute/firewall:Firewall",
        {"sourceRanges": ["203.0.113.0/24"], "allows": [{"protocol": "tcp", "ports": ["22"]}]},
        {"sourceRanges": ["0.0.0.0/0"], "allows": [{"protocol": "tcp", "ports": ["2375-2376"]}]},
        "port 2375",
    ),
    (
        rules.no_open_admin_ingress,
        NSG,
        {
            "securityRules": [
                {
                    "name": "ssh",
                    "direction": "Inbound",
                    "access": "Allow",
                    "protocol": "Tcp",
                    "sourceAddressPrefix": "203.0.113.7/32",
                    "destinationPortRange": "22",
                }
            ]
        },
        {
            "securityRules": [
                {
                    "name": "ssh",
                    "direction": "Inbound",
                    "access": "Allow",
                    "protocol": "Tcp",
                    "sourceAddressPrefix": "Internet",
                    "destinationPortRange": "22",
                }
            ]
        },
        "rule ssh opens SSH",
    ),
    (
        rules.no_open_admin_ingress,
        "azure-native:network:SecurityRule",
        {
            "direction": "Inbound",
            "access": "Deny",
            "protocol": "*",
            "sourceAddressPrefix": "*",
            "destinationPortRange": "*",
        },
        {
            "direction": "Inbound",
            "access": "Allow",
            "protocol": "*",
            "sourceAddressPrefix": "*",
            "destinationPortRanges": ["2375-2376"],
        },
        "the Docker API",
    ),
    (
        rules.no_open_admin_ingress,
        "docker:index/container:Container",
        {"ports": [{"internal": 9000, "external": 9000, "ip": "127.0.0.1"}]},
        {"ports": [{"internal": 9000, "external": 9000}]},
        "the S3 endpoint (port 9000) to 0.0.0.0",
    ),
    # Issue 13 item 5: each way the pack used to be fooled, a violating case.
    (
        rules.no_open_admin_ingress,
        "aws:ec2/securityGroup:SecurityGroup",
        {
            "ingress": [
                {
                    "protocol": "tcp",
                    "fromPort": 22,
                    "toPort": 22,
                    "cidrBlocks": ["198.51.100.0/24", "203.0.113.0/24"],
                }
            ]
        },
        {
            "ingress": [
                {
                    "protocol": "tcp",
                    "fromPort": 22,
                    "toPort": 22,
                    "cidrBlocks": ["0.0.0.0/1", "128.0.0.0/1"],
                }
            ]
        },
        "0.0.0.0/1, 128.0.0.0/1 (4,294,967,296 addresses together)",
    ),
    (
        rules.no_open_admin_ingress,
        "gcp:compute/firewall:Firewall",
        {"sourceRanges": ["0.0.0.0/0"], "allows": [{"protocol": "17", "ports": ["22"]}]},
        {"sourceRanges": ["0.0.0.0/0"], "allows": [{"protocol": "6", "ports": ["22"]}]},
        "the firewall opens SSH (port 22) to 0.0.0.0/0",
    ),
    (
        rules.no_open_admin_ingress,
        "gcp:compute/firewall:Firewall",
        {"sourceRanges": ["203.0.113.7/32"], "allows": [{"protocol": "tcp", "ports": ["22"]}]},
        {"sourceRanges": [rules.UNKNOWN], "allows": [{"protocol": "tcp", "ports": ["22"]}]},
        "unknown at preview",
    ),
    (
        rules.no_open_admin_ingress,
        NSG,
        {"securityRules": [IN_VNET]},
        {"securityRules": [{**SSH_FROM, "protocol": "6", "sourceAddressPrefix": "AzureCloud"}]},
        "opens SSH (port 22) to AzureCloud",
    ),
    (
        rules.no_open_admin_ingress,
        "docker:index/service:Service",
        {"endpointSpec": {"ports": [{"targetPort": 8080, "publishedPort": 8080}]}},
        {
            "endpointSpec": {
                "ports": [
                    {"targetPort": 22, "publishedPort": 2222},
                    {"targetPort": 2375, "publishedPort": 2375},
                ]
            }
        },
        "the service opens the Docker API (port 2375)",
    ),
    (
        rules.gpu_machines,
        "aws:ec2/spotInstanceRequest:SpotInstanceRequest",
        {"instanceType": "g4dn.2xlarge", "spotType": "one-time"},
        {"instanceType": "p4d.24xlarge", "spotType": "one-time"},
        "p4d.24xlarge is not an allowed GPU machine on aws",
    ),
    (
        rules.gpu_machines,
        "aws:ec2/launchTemplate:LaunchTemplate",
        {"instanceType": "g6.2xlarge", "userData": _b64(CLOUD_INIT_TTL)},
        {"instanceType": "g6.2xlarge", "userData": _b64("#cloud-config\n")},
        "neither spot nor",
    ),
    (
        rules.gpu_machines,
        "aws:ec2/instance:Instance",
        {"instanceType": "g6.2xlarge", "instanceMarketOptions": {"marketType": "spot"}},
        {"instanceType": "gr6.4xlarge", "instanceMarketOptions": {"marketType": "spot"}},
        "gr6.4xlarge is not an allowed GPU machine on aws",
    ),
    (
        rules.gpu_machines,
        "aws:autoscaling/group:Group",
        {"mixedInstancesPolicy": {"launchTemplate": {"overrides": [{"instanceType": "t3.large"}]}}},
        {"launchTemplate": {"id": "lt-1"}, "desiredCapacity": 1},
        "auto-scaling group",
    ),
    (
        rules.gpu_machines,
        "gcp:compute/instanceTemplate:InstanceTemplate",
        {"machineType": "g2-standard-8", "metadata": {"user-data": CLOUD_INIT_TTL}},
        {"machineType": "g2-standard-8", "metadata": {"user-data": "#cloud-config\n"}},
        "neither spot nor",
    ),
    (
        rules.gpu_machines,
        "azure-native:compute:VirtualMachineScaleSet",
        {"sku": {"name": "Standard_NC4as_T4_v3"}, "virtualMachineProfile": {"priority": "Spot"}},
        {"sku": {"name": "Standard_NC4as_T4_v3"}, "virtualMachineProfile": {"priority": "Regular"}},
        "neither spot nor",
    ),
    (
        rules.aws_imdsv2,
        "aws:ec2/spotInstanceRequest:SpotInstanceRequest",
        {"metadataOptions": {"httpTokens": "required"}},
        {"instanceType": "g4dn.xlarge"},
        "IMDSv2",
    ),
    (
        rules.no_plaintext_secrets_in_user_data,
        "azure-native:compute:VirtualMachineScaleSet",
        {"virtualMachineProfile": {"osProfile": {"customData": _b64("#cloud-config\n")}}},
        {
            "virtualMachineProfile": {
                "osProfile": {"customData": _b64("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n")}
            }
        },
        "a private key",
    ),
    (
        rules.gpu_machines,
        "aws:ec2/instance:Instance",
        {"instanceType": "g4dn.2xlarge", "instanceMarketOptions": {"marketType": "spot"}},
        {"instanceType": "p5.48xlarge", "instanceMarketOptions": {"marketType": "spot"}},
        "p5.48xlarge is not an allowed GPU machine on aws",
    ),
    (
        rules.gpu_machines,
        "aws:ec2/instance:Instance",
        {"instanceType": "g5.2xlarge", "userData": CLOUD_INIT_TTL},
        {"instanceType": "g5.2xlarge", "userData": "#cloud-config\n"},
        "neither spot nor",
    ),
    (
        rules.gpu_machines,
        "gcp:compute/instance:Instance",
        {
            "machineType": "n1-standard-8",
            "guestAccelerators": [{"type": "nvidia-tesla-t4"}],
            "scheduling": {"provisioningModel": "SPOT"},
        },
        {
            "machineType": "n1-standard-8",
            "guestAccelerators": [{"type": "nvidia-tesla-t4"}],
            "scheduling": {"provisioningModel": "STANDARD"},
        },
        "neither spot nor",
    ),
    (
        rules.gpu_machines,
        "azure-native:compute:VirtualMachine",
        {"hardwareProfile": {"vmSize": "Standard_NC4as_T4_v3"}, "priority": "Spot"},
        {"hardwareProfile": {"vmSize": "Standard_ND96asr_v4"}, "priority": "Spot"},
        "Standard_ND96asr_v4 is not an allowed GPU machine on azure",
    ),
    (
        rules.aws_imdsv2,
        "aws:ec2/instance:Instance",
        {"metadataOptions": {"httpTokens": "required"}},
        {"metadataOptions": {"httpTokens": "optional"}},
        "IMDSv2",
    ),
    (
        rules.aws_imdsv2,
        "aws:ec2/launchTemplate:LaunchTemplate",
        {"metadataOptions": {"httpTokens": "required", "httpEndpoint": "enabled"}},
        {},
        "IMDSv2",
    ),
    (
        rules.no_plaintext_secrets_in_user_data,
        "aws:ec2/instance:Instance",
        {"userData": "#!/bin/sh\nexport AWS_ACCESS_KEY_ID=$(cat /run/key)\n"},
        {"userData": "#!/bin/sh\nexport AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n"},
        "an AWS access key id",
    ),
    (
        rules.no_plaintext_secrets_in_user_data,
        "azure-native:compute:VirtualMachine",
        {"osProfile": {"customData": _b64("#cloud-config\npackages: [docker.io]\n")}},
        {"osProfile": {"customData": _b64("RCLONE_S3_SECRET_KEY=q8RZ4f0aXbT2mKp9LwE7\n")}},
        "a credential assignment",
    ),
    (
        rules.no_plaintext_secrets_in_user_data,
        "gcp:compute/instance:Instance",
        {"metadata": {"user-data": "[secret]"}},
        {"metadata": {"user-data": "docker swarm join --token SWMTKN-1-" + "a" * 50}},
        "a Swarm join token",
    ),
    (
        rules.no_plaintext_secrets_in_user_data,
        "aws:ec2/launchTemplate:LaunchTemplate",
        {"userData": _b64("#cloud-config\nusers: [default]\n")},
        {"userData": _b64("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n")},
        "a private key",
    ),
]


@pytest.mark.parametrize(
    ("rule", "type_", "good", "bad", "message"),
    CASES,
    ids=[f"{c[0].__name__}-{c[1].rsplit(':', 1)[-1]}-{n}" for n, c in enumerate(CASES)],
)
def test_compliant_passes_and_violating_is_named(rule, type_, good, bad, message):
    assert rule(_res(type_, **good), SETTINGS) == []
    found = rule(_res(type_, **bad), SETTINGS)
    assert found, f"{rule.__name__} let {bad} through"
    assert any(message in m for m in found), found


def test_every_rule_has_cases():
    tested = {c[0] for c in CASES} | {rules.no_long_lived_keys}
    assert {r.check for r in rules.RULES if r.check} <= tested


@pytest.mark.parametrize("text", FAKE_TTLS)
def test_the_ttl_timer_counts_only_where_it_is_installed_and_started(text):
    node = _res("aws:ec2/instance:Instance", instanceType="g5.2xlarge", userData=text)
    assert "neither spot nor" in rules.gpu_machines(node, SETTINGS)[0]


def test_keys_only_where_the_stack_asks():
    key = _res("gcp:serviceaccount/key:Key", serviceAccountId="trainer")
    access = _res("aws:iam/accessKey:AccessKey", user="ci")
    hmac = _res("gcp:storage/hmacKey:HmacKey", serviceAccountEmail="t@p.iam.gserviceaccount.com")
    assert "long-lived credential" in rules.no_long_lived_keys(key, SETTINGS)[0]
    assert "an HMAC key" in rules.no_long_lived_keys(hmac, SETTINGS)[0]
    assert rules.no_long_lived_keys(access, SETTINGS)
    with_key = settings_for(
        parse({"target": "gcp", "gcp": {"project": "my-project-1", "serviceAccountKey": True}})
    )
    assert rules.no_long_lived_keys(key, with_key) == []
    no_key = settings_for(parse({"target": "gcp", "gcp": {"project": "my-project-1"}}))
    assert rules.no_long_lived_keys(key, no_key)
    assert rules.no_long_lived_keys(access, settings_for(parse({}), {"allowKeys": True})) == []


def test_always_on_gpu_needs_an_opt_out_or_a_readable_ttl():
    node = _res("gcp:compute/instance:Instance", machineType="g2-standard-8")
    assert rules.gpu_machines(node, SETTINGS)
    opted_out = settings_for(parse({}), {"allowAlwaysOnGpu": True})
    assert rules.gpu_machines(node, opted_out) == []
    bounded = _res(
        "gcp:compute/instance:Instance",
        machineType="g2-standard-8",
        scheduling={"maxRunDuration": {"seconds": 14400}},
    )
    assert rules.gpu_machines(bounded, SETTINGS) == []
    # User data kept secret cannot be read: the stack's budget.ttlHours stands for the timer.
    secret = _res("aws:ec2/instance:Instance", instanceType="g4dn.2xlarge", userData="[secret]")
    assert rules.gpu_machines(secret, settings_for(parse({}))) == []
    no_ttl = settings_for(parse({"budget": {"ttlHours": None}}))
    assert rules.gpu_machines(secret, no_ttl)
    # A CPU machine (a manager without GPUs) is not a GPU machine.
    assert (
        rules.gpu_machines(_res("aws:ec2/instance:Instance", instanceType="t3.large"), SETTINGS)
        == []
    )
    narrowed = settings_for(parse({}), {"allowedMachineTypes": ["g4dn.xlarge"]})
    spot = _res(
        "aws:ec2/instance:Instance",
        instanceType="g4dn.2xlarge",
        instanceMarketOptions={"marketType": "spot"},
    )
    assert "allowed: g4dn.xlarge" in rules.gpu_machines(spot, narrowed)[0]


def _bucket_set(*without: str) -> list[Resource]:
    bucket = Resource("aws:s3/bucketV2:BucketV2", "models", {}, frozenset({"models-id"}))
    companions = [
        Resource(PAB, "pab", ALL_BLOCKED, refs=frozenset({"models-id"})),
        Resource(SSE, "sse", {}, refs=frozenset({"models-id"})),
        Resource(
            "aws:s3/bucketVersioningV2:BucketVersioningV2", "ver", {}, refs=frozenset({"models-id"})
        ),
    ]
    return [bucket, *(c for c in companions if c.name not in without)]


def test_every_s3_bucket_has_its_settings_resources():
    assert rules.bucket_companions(_bucket_set(), SETTINGS) == []
    assert rules.bucket_companions(_bucket_set("ver"), SETTINGS) == [
        "aws:s3/bucketV2:BucketV2 models has no BucketVersioning resource"
    ]
    other = [
        r if r.name != "pab" else Resource(PAB, "pab", {}, refs=frozenset({"other-id"}))
        for r in _bucket_set()
    ]
    assert rules.bucket_companions(other, SETTINGS) == [
        "aws:s3/bucketV2:BucketV2 models has no BucketPublicAccessBlock"
    ]


def test_every_azure_account_turns_blob_versioning_on():
    account = Resource(
        "azure-native:storage:StorageAccount",
        "acct",
        AZURE_ACCOUNT_OK,
        frozenset({"acct-id", "trackdaydata"}),
    )
    service = Resource(
        "azure-native:storage:BlobServiceProperties",
        "blob",
        {"isVersioningEnabled": True},
        refs=frozenset({"trackdaydata"}),
    )
    assert rules.bucket_companions([account, service], SETTINGS) == []
    assert "has no BlobServiceProperties" in rules.bucket_companions([account], SETTINGS)[0]


def test_hourly_cost_within_budget_uses_the_price_table():
    from infra import price_table

    nodes = [
        _res("aws:ec2/instance:Instance", instanceType="g4dn.2xlarge"),
        _res("aws:ec2/instance:Instance", instanceType="g4dn.2xlarge"),
    ]
    # Two machines, each with its auto-assigned public IPv4.
    two = 2 * (price_table.AWS_HOURLY["g4dn.2xlarge"] + price_table.AWS_PUBLIC_IPV4_HOURLY)
    under = settings_for(parse({"budget": {"hourly": two + 0.5}}))
    over = settings_for(parse({"budget": {"hourly": two - 0.5}}))
    assert rules.hourly_budget(nodes, under) == []
    assert f"estimated ${two:.4f}/h" in rules.hourly_budget(nodes, over)[0]
    assert rules.hourly_budget(nodes, settings_for(parse({}))) == [], "no budget, no limit"
    unknown = [_res("aws:ec2/instance:Instance", instanceType="p5.48xlarge")]
    assert "not in the price table" in rules.hourly_budget(unknown, under)[0]


def test_a_vertex_job_counts_towards_the_hourly_rate_while_training():
    from infra import price_table

    gcp = {"target": "gcp", "gcp": {"project": "my-project-1"}}
    job = (
        price_table.VERTEX_MACHINE_HOURLY["n1-standard-8"]
        + price_table.VERTEX_ACCELERATOR_HOURLY["NVIDIA_TESLA_T4"]
    )
    # No bucket is declared here: the job alone is what a training hour costs.
    ok = settings_for(parse({**gcp, "budget": {"hourly": job + 0.01}}))
    tight = settings_for(parse({**gcp, "budget": {"hourly": job - 0.01}}))
    assert rules.hourly_budget([], ok) == []
    assert "over budget.hourly" in rules.hourly_budget([], tight)[0]


def _node_user_data(cloud: str, role: str, services=()) -> str:
    from infra import bootstrap

    azure = (
        {"azure_identity_client_id": IDENTITY, "join_store": _azure_store()}
        if cloud == "azure"
        else {}
    )
    return bootstrap.user_data(
        bootstrap.NodeBootstrap(
            role=role,
            cloud=cloud,
            ssh_user="trackday",
            ssh_public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx2Yx8m3Vq2Q0tqf7m1r5m7k8c8s3d4 t",
            ttl_hours=4,
            idle_minutes=30,
            services=services,
            **azure,
        )
    )


IDENTITY = "12345678-1234-1234-1234-123456789abc"
VAULT = "https://tdpolicy0a1b2c.vault.azure.net"


def _azure_store():
    from infra.bootstrap.spec import JoinStore

    return JoinStore("azure", f"{VAULT}/secrets/swarm-join")


@pytest.mark.parametrize("cloud", ["aws", "azure", "gcp"])
def test_the_user_data_trackday_renders_passes_and_shows_its_ttl(cloud):
    """infra/bootstrap/'s documents (with the Azure gateway unit) hold no secret, and the
    rule finds their power-off timer, so an on-demand GPU node with them is bounded."""
    from infra import gateway

    service = gateway.node_service(
        gateway.GatewaySettings("trackdaydata", IDENTITY, f"{VAULT}/secrets/gateway-keys")
    )
    for role, services in (("manager", (service,) if cloud == "azure" else ()), ("worker", ())):
        text = _node_user_data(cloud, role, services)
        node = _res("aws:ec2/instance:Instance", instanceType="g4dn.2xlarge", userData=text)
        assert rules.no_plaintext_secrets_in_user_data(node, SETTINGS) == []
        assert rules.gpu_machines(node, SETTINGS) == []


def test_gzipped_user_data_is_read_as_cloud_init_reads_it():
    """The AWS target sends user data gzipped (infra/nodes.py gzip_base64): its TTL timer
    still counts, and a key in it is still caught."""
    from infra import gateway
    from infra.nodes import gzip_base64

    text = _node_user_data("aws", "worker")
    node = _res(
        "aws:ec2/instance:Instance", instanceType="g4dn.2xlarge", userDataBase64=gzip_base64(text)
    )
    assert rules.gpu_machines(node, SETTINGS) == []
    leak = "#cloud-config\nwrite_files:\n" + gateway.env_file(
        gateway.keys_env("a1B2c3D4e5F6g7H8i9J0", "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg")
    )
    node = _res("aws:ec2/instance:Instance", userDataBase64=gzip_base64(leak))
    assert rules.no_plaintext_secrets_in_user_data(node, SETTINGS) == [
        "user data holds a credential assignment"
    ]


def test_the_gateways_keys_in_user_data_are_caught():
    from infra import gateway

    env = gateway.env_file(
        gateway.keys_env("a1B2c3D4e5F6g7H8i9J0", "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg")
    )
    node = _res("aws:ec2/instance:Instance", userData="#cloud-config\nwrite_files:\n" + env)
    assert rules.no_plaintext_secrets_in_user_data(node, SETTINGS) == [
        "user data holds a credential assignment"
    ]


def test_a_legacy_bucket_may_carry_versioning_and_encryption_inline():
    sse = {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}
    legacy = Resource(
        "aws:s3/bucket:Bucket",
        "models",
        {"versioning": {"enabled": True}, "serverSideEncryptionConfiguration": {"rule": sse}},
        frozenset({"models-id"}),
    )
    block = Resource(PAB, "pab", ALL_BLOCKED, refs=frozenset({"models-id"}))
    assert rules.bucket_companions([legacy, block], SETTINGS) == []
    assert rules.bucket_companions([legacy], SETTINGS) == [
        "aws:s3/bucket:Bucket models has no BucketPublicAccessBlock"
    ]


def _lifecycle_set(rules_: list[dict]) -> list[Resource]:
    bucket = Resource("aws:s3/bucket:Bucket", "models", {}, frozenset({"models-id"}))
    lifecycle = Resource(
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        "lc",
        {"rules": rules_},
        refs=frozenset({"models-id"}),
    )
    return [bucket, lifecycle]


def test_old_versions_and_incomplete_uploads_expire_on_s3():
    whole = {
        "id": "x",
        "status": "Enabled",
        "noncurrentVersionExpiration": {"noncurrentDays": 30},
        "abortIncompleteMultipartUpload": {"daysAfterInitiation": 7},
    }
    assert rules.old_versions_expire(_lifecycle_set([whole]), SETTINGS) == []
    disabled = _lifecycle_set([{**whole, "status": "Disabled"}])
    assert len(rules.old_versions_expire(disabled, SETTINGS)) == 2
    no_abort = {k: v for k, v in whole.items() if k != "abortIncompleteMultipartUpload"}
    assert rules.old_versions_expire(_lifecycle_set([no_abort]), SETTINGS) == [
        "aws:s3/bucket:Bucket models keeps incomplete uploads forever "
        "(no lifecycle rule abortIncompleteMultipartUpload.daysAfterInitiation)"
    ]
    assert len(rules.old_versions_expire(_lifecycle_set([])[:1], SETTINGS)) == 2


def test_old_versions_expire_on_gcs_and_azure():
    delete = {"action": {"type": "Delete"}, "condition": {"daysSinceNoncurrentTime": 30}}
    abort = {"action": {"type": "AbortIncompleteMultipartUpload"}, "condition": {"age": 7}}
    gcs = _res("gcp:storage/bucket:Bucket", **GCS_OK, lifecycleRules=[delete, abort])
    assert rules.old_versions_expire([gcs], SETTINGS) == []
    only_cold = _res("gcp:storage/bucket:Bucket", **GCS_OK, lifecycleRules=[abort])
    assert "keeps old versions forever" in rules.old_versions_expire([only_cold], SETTINGS)[0]
    account = Resource(
        "azure-native:storage:StorageAccount", "acct", AZURE_ACCOUNT_OK, frozenset({"data1"})
    )
    rule = {
        "enabled": True,
        "definition": {"actions": {"version": {"delete": {"daysAfterCreationGreaterThan": 30}}}},
    }
    policy = Resource(
        "azure-native:storage:ManagementPolicy",
        "lc",
        {"policy": {"rules": [rule]}},
        refs=frozenset({"data1"}),
    )
    assert rules.old_versions_expire([account, policy], SETTINGS) == []
    assert "keeps old blob versions forever" in rules.old_versions_expire([account], SETTINGS)[0]
