"""A small, dated price table and the cost estimate of a declared stack.

List prices in USD, on-demand, for one region per cloud (the stack files' defaults). They
were taken from the pages in SOURCES and are as of PRICES_AS_OF: clouds change prices, so
treat the figures as an estimate and check the page before relying on one. Spot capacity
is priced at the on-demand rate, and each such line says so (SPOT_AT_ON_DEMAND): an upper
bound. No cloud publishes a dated spot price for these machines (AWS and Azure show theirs
only in pages that compute them live; Google's Spot VM page lists no N1 or T4 rate and its
rates change daily), and no figure is invented.

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
from infra.price_table import (
    AWS_GP3_GB_MONTH,
    AWS_HOURLY,
    AWS_PUBLIC_IPV4_HOURLY,
    AZURE_HOURLY,
    AZURE_PUBLIC_IP_HOURLY,
    AZURE_STANDARD_SSD_MONTH,
    FREE_PREFIXES,
    GCE_GPU_HOURLY,
    GCE_HOURLY,
    GCE_IPV4_IN_USE_HOURLY,
    GCE_IPV4_IN_USE_SPOT_HOURLY,
    GCE_PD_SSD_GB_MONTH,
    GCE_STATIC_IPV4_IDLE_HOURLY,
    HOURS_PER_MONTH,
    IMAGE_REPOSITORY_GB,
    PRICES_AS_OF,
    REPOSITORY_TYPES,
    SOURCES,
    STORAGE_GB_MONTH,
    VERTEX_ACCELERATOR_HOURLY,
    VERTEX_MACHINE_HOURLY,
)

# What a spot machine's line says: its price is the on-demand one (module docstring).
SPOT_AT_ON_DEMAND = " (spot, priced at on-demand: no published spot figure)"


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
        + (SPOT_AT_ON_DEMAND if nodes.spot else ""),
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
        f"{resource.name}: {machine}" + (SPOT_AT_ON_DEMAND if config.nodes.spot else ""),
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
