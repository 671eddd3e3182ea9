"""A small, dated price table and the cost estimate of a declared stack.

List prices in USD, on-demand, for one region per cloud (the stack files' defaults). They
were taken from the pages in SOURCES and are as of PRICES_AS_OF: clouds change prices, so
treat the figures as an estimate and check the page before relying on one. Spot capacity
is priced at the on-demand rate (an upper bound: spot prices move daily).

Each line says what it costs per hour while the nodes run and per hour while they are
stopped (TTL, idle power-off, spot interruption): machines bill only running; root disks,
static addresses and the bucket bill either way; an ephemeral public IPv4 bills while its
VM runs.

Every declared resource type is either priced here, known to cost nothing by itself
(FREE), or reported as unpriced: never silently counted as zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from infra import catalog
from infra.config import StackConfig
from infra.offline import DeclaredResource, OfflineRun

PRICES_AS_OF = "2025-06-01"
HOURS_PER_MONTH = 730
SOURCES = {
    "gcp": "https://cloud.google.com/compute/all-pricing, "
    "https://cloud.google.com/compute/disks-image-pricing, "
    "https://cloud.google.com/vpc/network-pricing#ipaddress, "
    "https://cloud.google.com/compute/gpus-pricing, https://cloud.google.com/vertex-ai/pricing, "
    "https://cloud.google.com/storage/pricing, "
    "https://cloud.google.com/artifact-registry/pricing (us-central1)",
    "aws": "https://aws.amazon.com/ec2/pricing/on-demand/, "
    "https://aws.amazon.com/ebs/pricing/, https://aws.amazon.com/vpc/pricing/ (public IPv4), "
    "https://aws.amazon.com/s3/pricing/ (us-east-1)",
    "azure": "https://azure.microsoft.com/pricing/details/virtual-machines/linux/, "
    "https://azure.microsoft.com/pricing/details/managed-disks/, "
    "https://azure.microsoft.com/pricing/details/storage/blobs/, "
    "https://azure.microsoft.com/pricing/details/ip-addresses/ (East US)",
    "local": "your own machine: no cloud charges",
}

# Compute Engine machines, per hour. n1 prices exclude GPUs (attached, priced in GPU_HOURLY);
# g2 and a2 prices include their built-in GPUs.
GCE_HOURLY = {
    "n1-standard-4": 0.189999,
    "n1-standard-8": 0.379998,
    "n1-standard-16": 0.759996,
    "g2-standard-4": 0.706832,
    "g2-standard-8": 0.853624,
    "g2-standard-16": 1.147208,
    "a2-highgpu-1g": 3.673385,
    "a2-highgpu-2g": 7.34677,
}
GCE_GPU_HOURLY = {"nvidia-tesla-t4": 0.35}
# Vertex AI custom training: the machine and each accelerator are billed separately.
VERTEX_MACHINE_HOURLY = {
    "n1-standard-4": 0.2185,
    "n1-standard-8": 0.4370,
    "n1-standard-16": 0.8740,
    "g2-standard-4": 0.2835,
    "g2-standard-8": 0.3425,
    "g2-standard-16": 0.4605,
    "a2-highgpu-1g": 0.8652,
    "a2-highgpu-2g": 1.7305,
}
VERTEX_ACCELERATOR_HOURLY = {
    "NVIDIA_TESLA_T4": 0.4025,
    "NVIDIA_L4": 0.6440,
    "NVIDIA_TESLA_A100": 3.3741,
}
AWS_HOURLY = {
    "g4dn.xlarge": 0.526,
    "g4dn.2xlarge": 0.752,
    "g4dn.4xlarge": 1.204,
    "g4dn.12xlarge": 3.912,
    "g5.xlarge": 1.006,
    "g5.2xlarge": 1.212,
    "g5.4xlarge": 1.624,
    "g6.xlarge": 0.8048,
    "g6.2xlarge": 0.9776,
    "g6.4xlarge": 1.3232,
}
AZURE_HOURLY = {
    "Standard_NC4as_T4_v3": 0.526,
    "Standard_NC8as_T4_v3": 0.752,
    "Standard_NC16as_T4_v3": 1.204,
    "Standard_NC64as_T4_v3": 4.352,
    "Standard_NV36ads_A10_v5": 3.20,
    "Standard_NC24ads_A100_v4": 3.673,
}
# A Standard static public IPv4 address (one per Azure node), per hour, allocated or not.
AZURE_PUBLIC_IP_HOURLY = 0.005
# Public IPv4 on AWS: every address, per hour (an Elastic IP whether attached or not, an
# auto-assigned one while its instance runs).
AWS_PUBLIC_IPV4_HOURLY = 0.005
# Compute Engine external IPv4, per hour: in use by a standard VM, by a spot VM, and a static
# address reserved but not in use (its VM stopped).
GCE_IPV4_IN_USE_HOURLY = 0.005
GCE_IPV4_IN_USE_SPOT_HOURLY = 0.0025
GCE_STATIC_IPV4_IDLE_HOURLY = 0.01
# Root disks, per GB-month: gp3 on AWS, pd-ssd on GCP. Azure bills Standard SSD by size tier
# (E1 4 GiB ... E40 2 TiB), per month.
AWS_GP3_GB_MONTH = 0.08
GCE_PD_SSD_GB_MONTH = 0.17
AZURE_STANDARD_SSD_MONTH = (
    (4, 0.30), (8, 0.60), (16, 1.20), (32, 2.40), (64, 4.80), (128, 9.60),
    (256, 19.20), (512, 38.40), (1024, 76.80), (2048, 153.60),
)  # fmt: skip
# Storage, per GB-month.
STORAGE_GB_MONTH = {
    "gcp:storage/bucket:Bucket": 0.020,
    "gcp:artifactregistry/repository:Repository": 0.10,
    "aws:s3/bucketV2:BucketV2": 0.023,
    "aws:s3/bucket:Bucket": 0.023,
    "azure-native:storage:StorageAccount": 0.0184,
}

# Image repositories hold the trainer image (TensorFlow GPU base: about 10 GB with its layers).
IMAGE_REPOSITORY_GB = 10
REPOSITORY_TYPES = ("gcp:artifactregistry/repository:Repository",)

# Types that bill nothing by themselves (what they create is priced elsewhere, or is free).
FREE_PREFIXES = (
    "pulumi:providers:",
    "trackday:",
    "random:",
    "tls:",
    "command:",
    "pulumi-python:dynamic:",  # dynamic providers run on the operator's machine (run files)
    "docker:",  # the local engine, or containers on nodes priced as machines
    "docker-build:",  # building; the stored image is priced with its repository
    "gcp:projects/service:",
    "gcp:serviceaccount/account:",
    "gcp:serviceaccount/key:",
    "gcp:storage/bucketIAMMember:",
    "gcp:artifactregistry/repositoryIamMember:",
    "gcp:compute/network:",
    "gcp:compute/subnetwork:",
    "gcp:compute/firewall:",
    "aws:iam/",
    "aws:ec2/vpc:",
    "aws:ec2/subnet:",
    "aws:ec2/securityGroup",
    "aws:ec2/internetGateway:",
    "aws:ec2/routeTable",
    "aws:ec2/route:",
    "aws:s3/bucket",  # bucket settings resources (versioning, policy, public access block...)
    "azure-native:resources:",
    "azure-native:managedidentity:",
    "azure-native:authorization:",
    "azure-native:network:virtualNetwork",
    "azure-native:network:subnet",
    "azure-native:network:networkSecurityGroup",
    "azure-native:network:VirtualNetwork",
    "azure-native:network:Subnet",
    "azure-native:network:NetworkSecurityGroup",
    "azure-native:network:NetworkInterface",
    "azure-native:compute:VirtualMachineExtension",  # the NVIDIA driver: no charge of its own
    "azure-native:storage:BlobContainer",
    "azure-native:storage:BlobServiceProperties",
    "azure-native:storage:ManagementPolicy",
)


@dataclass(frozen=True)
class CostLine:
    """One priced item. `hourly`: while the nodes run; `stopped_hourly`: while they are
    stopped; `per_run`: added by one training run."""

    item: str
    detail: str
    hourly: float = 0.0
    per_run: float = 0.0
    stopped_hourly: float = 0.0


@dataclass(frozen=True)
class Unpriced:
    item: str
    reason: str


@dataclass
class CostEstimate:
    currency: str = "USD"
    as_of: str = PRICES_AS_OF
    source: str = ""
    run_hours: float = 1.0
    storage_gb: float = 0.0
    lines: list[CostLine] = field(default_factory=list)
    unpriced: list[Unpriced] = field(default_factory=list)

    @property
    def hourly(self) -> float:
        return round(sum(line.hourly for line in self.lines), 4)

    @property
    def per_run(self) -> float:
        return round(sum(line.per_run for line in self.lines), 4)

    @property
    def stopped_monthly(self) -> float:
        """What the stack costs in a month with every node stopped (disks, addresses, data)."""
        return round(sum(line.stopped_hourly for line in self.lines) * HOURS_PER_MONTH, 2)

    @property
    def complete(self) -> bool:
        return not self.unpriced

    def to_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "asOf": self.as_of,
            "source": self.source,
            "runHours": self.run_hours,
            "storageGb": self.storage_gb,
            "hourly": self.hourly,
            "perRun": self.per_run,
            "stoppedMonthly": self.stopped_monthly,
            "complete": self.complete,
            "lines": [
                {
                    "item": x.item,
                    "detail": x.detail,
                    "hourly": x.hourly,
                    "perRun": x.per_run,
                    "stoppedMonthly": round(x.stopped_hourly * HOURS_PER_MONTH, 2),
                }
                for x in self.lines
            ],
            "unpriced": [vars(u) for u in self.unpriced],
        }


def estimate(run: OfflineRun, config: StackConfig) -> CostEstimate:
    """Price what `run` declares, plus the Vertex AI job a run starts on the gcp target."""
    est = CostEstimate(
        source=SOURCES[config.target],
        run_hours=config.budget.run_hours,
        storage_gb=config.budget.storage_gb,
    )
    for resource in run.resources:
        pricer = _PRICERS.get(resource.type)
        if not resource.custom or (pricer is None and resource.type.startswith(FREE_PREFIXES)):
            continue
        if pricer is None:
            est.unpriced.append(
                Unpriced(f"{resource.type} {resource.name}", "type not in the price table")
            )
            continue
        priced = pricer(resource, config)
        if isinstance(priced, Unpriced):
            est.unpriced.append(priced)
        else:
            est.lines += priced if isinstance(priced, list) else [priced]
    if config.target == "gcp":
        line = vertex_job(config)
        (est.unpriced if isinstance(line, Unpriced) else est.lines).append(line)
    return est


def vertex_job(config: StackConfig) -> CostLine | Unpriced:
    """One Vertex AI custom job of `budget.runHours` on the configured machine."""
    nodes = config.nodes
    accelerator = catalog.VERTEX_ACCELERATOR.get(nodes.gpu.type or "", "")
    machine = VERTEX_MACHINE_HOURLY.get(nodes.machine_type or "")
    gpu = VERTEX_ACCELERATOR_HOURLY.get(accelerator)
    item = "Vertex AI custom job"
    if machine is None or gpu is None:
        return Unpriced(
            f"{item} {nodes.machine_type} + {accelerator}",
            "machine or accelerator not in the price table",
        )
    hourly = machine + gpu * (nodes.gpu.count or 1)
    return CostLine(
        item,
        f"{nodes.machine_type} + {nodes.gpu.count} x {accelerator}, {config.budget.run_hours} h"
        + (" (spot, priced at on-demand)" if nodes.spot else ""),
        per_run=round(hourly * config.budget.run_hours, 4),
    )


def _storage(resource: DeclaredResource, config: StackConfig) -> CostLine:
    per_gb = STORAGE_GB_MONTH[resource.type]
    gb = IMAGE_REPOSITORY_GB if resource.type in REPOSITORY_TYPES else config.budget.storage_gb
    hourly = round(per_gb * gb / HOURS_PER_MONTH, 6)
    return CostLine(
        resource.type,
        f"{resource.name}: {gb:g} GB at ${per_gb}/GB-month",
        hourly=hourly,
        stopped_hourly=hourly,
    )


def _machine(resource: DeclaredResource, machine: str, hourly: float | None, config: StackConfig):
    """A GPU node: billed while it exists, and for the hours of each run it carries."""
    if hourly is None:
        return Unpriced(
            f"{resource.type} {resource.name} ({machine})", "machine type not in the price table"
        )
    return CostLine(
        resource.type,
        f"{resource.name}: {machine}"
        + (" (spot, priced at on-demand)" if config.nodes.spot else ""),
        hourly=hourly,
        per_run=round(hourly * config.budget.run_hours, 4),
    )


def _disk(resource: DeclaredResource, gb: Any, monthly: float, what: str) -> CostLine:
    """A root disk: billed whether its VM runs or not."""
    hourly = round(monthly / HOURS_PER_MONTH, 6)
    return CostLine("root disk", f"{resource.name}: {gb} GB {what}", hourly, 0.0, hourly)


def _ipv4(resource: DeclaredResource, running: float, stopped: float, what: str) -> CostLine:
    return CostLine("public IPv4", f"{resource.name}: {what}", running, 0.0, stopped)


def _gce_instance(resource: DeclaredResource, config: StackConfig):
    machine = str(resource.inputs.get("machineType", ""))
    hourly = GCE_HOURLY.get(machine)
    for accelerator in resource.inputs.get("guestAccelerators") or []:
        gpu = GCE_GPU_HOURLY.get(str(accelerator.get("type", "")).rsplit("/", 1)[-1])
        hourly = (
            None
            if hourly is None or gpu is None
            else hourly + gpu * int(accelerator.get("count", 1))
        )
    line = _machine(resource, machine, hourly, config)
    if isinstance(line, Unpriced):
        return line
    lines = [line]
    size = (((resource.inputs.get("bootDisk") or {}).get("initializeParams")) or {}).get("size")
    if size:
        lines.append(_disk(resource, size, size * GCE_PD_SSD_GB_MONTH, "pd-ssd"))
    for interface in resource.inputs.get("networkInterfaces") or []:
        for access in interface.get("accessConfigs") or []:
            if not access.get("natIp"):  # a static address is priced as its own resource
                spot = (resource.inputs.get("scheduling") or {}).get("provisioningModel") == "SPOT"
                rate = GCE_IPV4_IN_USE_SPOT_HOURLY if spot else GCE_IPV4_IN_USE_HOURLY
                lines.append(_ipv4(resource, rate, 0.0, "ephemeral, while running"))
    return lines


def _gce_address(resource: DeclaredResource, config: StackConfig) -> CostLine:
    return _ipv4(
        resource,
        GCE_IPV4_IN_USE_HOURLY,
        GCE_STATIC_IPV4_IDLE_HOURLY,
        "static (more while its VM is stopped)",
    )


def _ec2_instance(resource: DeclaredResource, config: StackConfig):
    machine = str(resource.inputs.get("instanceType", ""))
    line = _machine(resource, machine, AWS_HOURLY.get(machine), config)
    if isinstance(line, Unpriced):
        return line
    lines = [line]
    size = (resource.inputs.get("rootBlockDevice") or {}).get("volumeSize")
    if size:
        lines.append(_disk(resource, size, size * AWS_GP3_GB_MONTH, "gp3"))
    # The manager's address is its Elastic IP (priced on its own); the others' auto-assigned.
    if (resource.inputs.get("tags") or {}).get("trackday-role") != "manager":
        lines.append(_ipv4(resource, AWS_PUBLIC_IPV4_HOURLY, 0.0, "auto-assigned, while running"))
    return lines


def _aws_eip(resource: DeclaredResource, config: StackConfig) -> CostLine:
    return _ipv4(resource, AWS_PUBLIC_IPV4_HOURLY, AWS_PUBLIC_IPV4_HOURLY, "Elastic IP")


def _azure_vm(resource: DeclaredResource, config: StackConfig):
    machine = str((resource.inputs.get("hardwareProfile") or {}).get("vmSize", ""))
    line = _machine(resource, machine, AZURE_HOURLY.get(machine), config)
    if isinstance(line, Unpriced):
        return line
    size = (((resource.inputs.get("storageProfile") or {}).get("osDisk")) or {}).get("diskSizeGB")
    if not size:
        return [line]
    tier, monthly = next(
        ((gb, price) for gb, price in AZURE_STANDARD_SSD_MONTH if gb >= size),
        AZURE_STANDARD_SSD_MONTH[-1],
    )
    return [line, _disk(resource, size, monthly, f"Standard SSD (billed as {tier} GiB)")]


def _azure_public_ip(resource: DeclaredResource, config: StackConfig) -> CostLine:
    return _ipv4(resource, AZURE_PUBLIC_IP_HOURLY, AZURE_PUBLIC_IP_HOURLY, "Standard static")


Priced = CostLine | list[CostLine] | Unpriced
_PRICERS: dict[str, Callable[[DeclaredResource, StackConfig], Priced]] = {
    **dict.fromkeys(STORAGE_GB_MONTH, _storage),
    "gcp:compute/instance:Instance": _gce_instance,
    "gcp:compute/address:Address": _gce_address,
    "aws:ec2/instance:Instance": _ec2_instance,
    "aws:ec2/spotInstanceRequest:SpotInstanceRequest": _ec2_instance,
    "aws:ec2/eip:Eip": _aws_eip,
    "azure-native:compute:VirtualMachine": _azure_vm,
    "azure-native:network:PublicIPAddress": _azure_public_ip,
}
