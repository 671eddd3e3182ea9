"""The clouds' own rules that a stack must meet, as dated data with their sources.

Pulumi's mocks accept any value; the clouds do not. What a real `pulumi up` would refuse,
or what would misbehave on a real node, is written down here once, with the date it was
read and where, and used by the stack config checks (infra/config.py), the targets and the
policy pack (policy/rules.py) alike. When a cloud changes a rule, change it here and
update the date.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

RULES_AS_OF = "2026-11-30"


@dataclass(frozen=True)
class Rule:
    """Where a rule comes from, so that a reader can check it again."""

    source: str
    as_of: str = RULES_AS_OF


# --- AWS ---------------------------------------------------------------------------------------

# CloudWatch Logs PutRetentionPolicy: "Possible values are: 1, 3, 5, 7, 14, 30, 60, 90, 120,
# 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, and 3653."
CLOUDWATCH_RETENTION = Rule(
    "https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/"
    "API_PutRetentionPolicy.html"
)
CLOUDWATCH_RETENTION_DAYS: tuple[int, ...] = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

# EC2's accelerated-computing instance families (the part of the type before the dot).
# `gr6` (L4, more memory per vCPU) is one: a family prefix test ("g", "p") misses it.
EC2_ACCELERATED = Rule("https://docs.aws.amazon.com/ec2/latest/instancetypes/ac.html")
EC2_GPU_FAMILIES = frozenset(
    {
        "dl1", "dl2q", "f1", "f2", "g3", "g3s", "g4ad", "g4dn", "g5", "g5g", "g6", "g6e",
        "g6f", "gr6", "gr6f", "g7", "g7e", "inf1", "inf2", "p2", "p3", "p3dn", "p4d", "p4de",
        "p5", "p5e", "p5en", "p6-b200", "p6-b300", "p6e-gb200", "trn1", "trn1n", "trn2",
        "trn2u", "vt1",
    }
)  # fmt: skip

# Root volume of the AMI the aws target looks up (AMI_NAME in infra/targets/aws.py): EC2
# refuses a root volume smaller than the image's snapshot. The Deep Learning Base OSS Nvidia
# Driver GPU AMI shipped a 75 GB snapshot (Ubuntu 22.04). The target also checks the snapshot
# the lookup returns (now the Ubuntu 24.04 image), so a larger image fails before any instance
# is created.
IMAGE_ROOT_GB = Rule(
    "https://docs.aws.amazon.com/dlami/latest/devguide/appendix-ami-release-notes.html; "
    "https://docs.cloud.google.com/deep-learning-vm/docs/images; "
    "https://learn.microsoft.com/azure/virtual-machines/managed-disks-overview"
)
MIN_ROOT_GB = {"aws": 75, "gcp": 50, "azure": 30}

# EC2 public IPv4 addresses: every public IPv4 address bills per hour, in use or not
# (Elastic IPs while allocated; auto-assigned ones while the instance runs).
AWS_PUBLIC_IPV4 = Rule("https://aws.amazon.com/vpc/pricing/")

# --- Azure -------------------------------------------------------------------------------------

# Blob soft delete (DeleteRetentionPolicy.days): "minimum specified value can be 1 and the
# maximum value can be 365"; the same for container soft delete.
AZURE_SOFT_DELETE = Rule(
    "https://learn.microsoft.com/rest/api/storagerp/blob-services/set-service-properties"
    "#deleteretentionpolicy"
)
AZURE_MAX_KEEP_DELETED_DAYS = 365

# Role assignment `principalType` (azure-native's PrincipalType enum). ARM refuses an
# assignment whose type does not match the principal: a CI deployer signed in as a service
# principal or managed identity is not a "User". Leave it unset where it is not known.
AZURE_ROLE_ASSIGNMENT = Rule(
    "https://learn.microsoft.com/rest/api/authorization/role-assignments/create"
    "#principaltype; pulumi-azure-native schema authorization:PrincipalType"
)
AZURE_PRINCIPAL_TYPES = frozenset({"User", "Group", "ServicePrincipal", "ForeignGroup", "Device"})
# Managed identities are service principals in Entra ID.
MANAGED_IDENTITY_PRINCIPAL_TYPE = "ServicePrincipal"
# The SDK cannot leave the type out (pulumi-azure-native's RoleAssignment fills in "User"
# when none is given), so the deployer's type is taken from who signed in: a token issued to
# the Azure CLI's own application is a user's (`az login`); any other client is a service
# principal or managed identity (CI, `az login --service-principal`, `--identity`).
AZURE_CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
AZURE_FIRST_PARTY_APPS = Rule(
    "https://learn.microsoft.com/troubleshoot/azure/entra/entra-id/governance/"
    "verify-first-party-apps-sign-in (Microsoft Azure CLI)"
)


def azure_deployer_principal_type(client_id: str, configured: str | None = None) -> str:
    """The principal type of whoever runs `pulumi up`: `configured` if set, else from the
    client their token was issued to."""
    if configured is not None:
        if configured not in AZURE_PRINCIPAL_TYPES:
            allowed = ", ".join(sorted(AZURE_PRINCIPAL_TYPES))
            raise ValueError(f"{configured!r} is not one of {allowed}")
        return configured
    return "User" if client_id.lower() == AZURE_CLI_CLIENT_ID else "ServicePrincipal"


# The NVIDIA GPU driver extension installs CUDA unless told not to (`installCUDA`, default
# true): minutes of apt under the dpkg lock, and a reboot. trackday's containers bring their
# own CUDA; the node needs the driver only.
AZURE_NVIDIA_EXTENSION = Rule(
    "https://learn.microsoft.com/azure/virtual-machines/extensions/hpccompute-gpu-linux"
)

# --- Google Cloud ------------------------------------------------------------------------------

# A new VPC network's MTU is 1460 unless set (1300 to 8896 allowed). Docker's VXLAN overlay
# gives containers an MTU of 1450 and adds 50 bytes on the wire: 1500, which a 1460 network
# drops. The node pool's network is therefore made with an MTU of 1500.
GCP_MTU = Rule(
    "https://cloud.google.com/vpc/docs/mtu; "
    "https://docs.docker.com/engine/network/drivers/overlay/ (VXLAN, 50 bytes of headers)"
)
GCP_DEFAULT_MTU = 1460
GCP_MTU_RANGE = (1300, 8896)
VXLAN_OVERHEAD = 50
DOCKER_OVERLAY_MTU = 1450
GCP_NODE_MTU = DOCKER_OVERLAY_MTU + VXLAN_OVERHEAD

# Zones of each region, and the zones where each GPU type trackday offers is available.
# Not every region has an "-a" zone (us-east1 and europe-west1 start at "-b"). A region not
# listed here needs `gcp.zone`.
GCP_GPU_ZONES_RULE = Rule(
    "https://cloud.google.com/compute/docs/regions-zones; "
    "https://cloud.google.com/compute/docs/gpus/gpu-regions-zones"
)
GCP_ZONES: dict[str, tuple[str, ...]] = {
    "us-central1": ("a", "b", "c", "f"),
    "us-east1": ("b", "c", "d"),
    "us-east4": ("a", "b", "c"),
    "us-west1": ("a", "b", "c"),
    "europe-west1": ("b", "c", "d"),
    "europe-west4": ("a", "b", "c"),
    "asia-southeast1": ("a", "b", "c"),
}
GCP_GPU_ZONES: dict[str, dict[str, tuple[str, ...]]] = {
    "us-central1": {
        "T4": ("a", "b", "c", "f"),
        "L4": ("a", "b", "c"),
        "A100": ("a", "b", "c", "f"),
    },
    "us-east1": {"T4": ("c", "d"), "L4": ("b", "c", "d"), "A100": ("b",)},
    "us-east4": {"T4": ("a", "b", "c"), "L4": ("a", "c")},
    "us-west1": {"T4": ("a", "b"), "L4": ("a", "b", "c"), "A100": ("b",)},
    "europe-west1": {"T4": ("b", "c", "d"), "L4": ("b", "c")},
    "europe-west4": {"T4": ("a", "b", "c"), "L4": ("a", "b", "c"), "A100": ("a", "b")},
    "asia-southeast1": {"T4": ("a", "b", "c"), "L4": ("a", "b", "c"), "A100": ("b", "c")},
}


def gcp_zone(region: str, gpu: str | None, zone: str | None) -> str:
    """The zone of a GCP node pool: `zone` checked against the region's table, or the
    region's first zone that has `gpu`. Raises ValueError saying what to set."""
    zones = GCP_ZONES.get(region)
    if zone is not None:
        if not zone.startswith(f"{region}-"):
            raise ValueError(f"zone {zone!r} is not in region {region}")
        if zones is None:
            return zone
        letter = zone.removeprefix(f"{region}-")
        if letter not in zones:
            raise ValueError(
                f"{region} has zones {', '.join(f'{region}-{z}' for z in zones)} "
                f"(as of {GCP_GPU_ZONES_RULE.as_of}); {zone} is none of them"
            )
        with_gpu = GCP_GPU_ZONES[region].get(gpu or "", ())
        if gpu is not None and letter not in with_gpu:
            raise ValueError(
                f"{zone} has no {gpu} GPUs; {gpu} zones in {region}: "
                + (", ".join(f"{region}-{z}" for z in with_gpu) or "none")
            )
        return zone
    if zones is None:
        raise ValueError(
            f"trackday has no zone table for {region}; set gcp.zone to a zone of {region} "
            f"that has {gpu or 'the'} GPUs (see {GCP_GPU_ZONES_RULE.source.split('; ')[-1]})"
        )
    with_gpu = GCP_GPU_ZONES[region].get(gpu or "", zones if gpu is None else ())
    if not with_gpu:
        raise ValueError(
            f"{region} offers no {gpu} GPUs; pick another region or GPU type "
            f"(regions with {gpu}: {', '.join(r for r, g in GCP_GPU_ZONES.items() if gpu in g)})"
        )
    return f"{region}-{with_gpu[0]}"


# --- Every cloud: buckets --------------------------------------------------------------------

# Parts of an upload never completed bill as storage until aborted (S3, and Cloud Storage's
# XML multipart uploads); both take a lifecycle rule that aborts them. Azure drops
# uncommitted blocks by itself after 7 days.
BUCKET_LIFECYCLE = Rule(
    "https://docs.aws.amazon.com/AmazonS3/latest/userguide/"
    "mpu-abort-incomplete-mpu-lifecycle-config.html; "
    "https://cloud.google.com/storage/docs/lifecycle#abort-mpu; "
    "https://learn.microsoft.com/rest/api/storageservices/put-block#remarks"
)
INCOMPLETE_UPLOAD_DAYS = 7

# --- Every cloud: who may reach the nodes ------------------------------------------------------

# The most addresses the ranges allowed to reach SSH and the Docker API may cover together:
# 65,536 (a /16). More is "a large share of the internet" whatever the ranges look like
# (0.0.0.0/1 + 128.0.0.0/1 is the whole of it), and no operator's own network is that wide.
MAX_ADMIN_ADDRESSES = 2**16


def admin_coverage(cidrs: Iterable[str]) -> int:
    """How many IPv4 addresses a set of ranges covers together (overlaps counted once)."""
    networks = [ipaddress.ip_network(c, strict=False) for c in cidrs]
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    return sum(n.num_addresses for n in ipaddress.collapse_addresses(v4))
