"""VMs and what makes them: GPU machines allowed and bounded, IMDSv2, and their user data.

Every resource type that starts a VM is checked, not only the ones trackday declares: EC2
instances, spot requests, launch templates and auto-scaling groups; Compute Engine instances
and instance templates; Azure VMs and scale sets. A GPU machine is bounded when it is spot
or stopped by a time-to-live: a `maxRunDuration`, or the power-off timer infra/bootstrap/
renders, found in the user data's structure (a `write_files` timer with `OnBootSec=` and a
`runcmd` that enables it), never by a string anywhere in it (a comment would do).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import re
from typing import Any

import yaml

from infra import cloud_rules
from policy.model import UNKNOWN, UNREADABLE, Resource, Settings, as_list, get

AWS_INSTANCE = "aws:ec2/instance:Instance"
AWS_SPOT_REQUEST = "aws:ec2/spotInstanceRequest:SpotInstanceRequest"
AWS_LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
AWS_ASG = "aws:autoscaling/group:Group"
GCE_INSTANCE = "gcp:compute/instance:Instance"
GCE_TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
AZURE_VM = "azure-native:compute:VirtualMachine"
AZURE_SCALE_SET = "azure-native:compute:VirtualMachineScaleSet"

# (cloud, where the machine type is) per VM-making type.
_MACHINE_PATHS = {
    AWS_INSTANCE: ("aws", "instanceType"),
    AWS_SPOT_REQUEST: ("aws", "instanceType"),
    AWS_LAUNCH_TEMPLATE: ("aws", "instanceType"),
    GCE_INSTANCE: ("gcp", "machineType"),
    GCE_TEMPLATE: ("gcp", "machineType"),
    AZURE_VM: ("azure", "hardwareProfile.vmSize"),
    AZURE_SCALE_SET: ("azure", "sku.name"),
}
_GPU_PREFIXES = {
    "gcp": ("a2-", "a3-", "a4-", "a4x-", "g2-", "g4-"),
    "azure": ("Standard_N",),
}
# An EC2 family not in the dated table yet, but named like the accelerated ones.
_AWS_GPU_LIKE = re.compile(r"(p|g|gr|inf|trn|dl)\d")

# (path, base64-encoded?) of each user-data input.
_USER_DATA_PATHS = {
    AWS_INSTANCE: (("userData", False), ("userDataBase64", True)),
    AWS_SPOT_REQUEST: (("userData", False), ("userDataBase64", True)),
    AWS_LAUNCH_TEMPLATE: (("userData", True),),
    GCE_INSTANCE: (
        ("metadata.user-data", False),
        ("metadata.startup-script", False),
        ("metadataStartupScript", False),
    ),
    GCE_TEMPLATE: (
        ("metadata.user-data", False),
        ("metadata.startup-script", False),
        ("metadataStartupScript", False),
    ),
    AZURE_VM: (("osProfile.customData", True), ("userData", True)),
    AZURE_SCALE_SET: (
        ("virtualMachineProfile.osProfile.customData", True),
        ("virtualMachineProfile.userData", True),
    ),
}

TTL_UNIT = "trackday-ttl"  # the power-off timer infra/bootstrap/ renders


def machine(resource: Resource) -> tuple[str, str] | None:
    """(cloud, machine type) of a VM-making resource, or None for anything else."""
    found = _MACHINE_PATHS.get(resource.type)
    if found is None:
        return None
    cloud, path = found
    return cloud, str(get(resource.inputs, path, "") or "").rsplit("/", 1)[-1]


def is_gpu(cloud: str, machine_type: str, resource: Resource) -> bool:
    if resource.inputs.get("guestAccelerators"):
        return True
    if cloud == "aws":
        family = machine_type.split(".", 1)[0]
        return family in cloud_rules.EC2_GPU_FAMILIES or bool(_AWS_GPU_LIKE.match(family))
    return machine_type.startswith(_GPU_PREFIXES.get(cloud, ()))


def _is_spot(resource: Resource) -> bool:
    i = resource.inputs
    return (
        resource.type == AWS_SPOT_REQUEST
        or get(i, "instanceMarketOptions.marketType") == "spot"
        or get(i, "scheduling.provisioningModel") == "SPOT"
        or get(i, "scheduling.preemptible") is True
        or i.get("priority") == "Spot"
        or get(i, "virtualMachineProfile.priority") == "Spot"
    )


def _runs_ttl_timer(command: Any) -> bool:
    words = command if isinstance(command, list) else str(command).split()
    words = [str(w) for w in words]
    return (
        bool(words)
        and words[0].endswith("systemctl")
        and ("enable" in words or "start" in words)
        and f"{TTL_UNIT}.timer" in words
    )


def renders_ttl_timer(text: str) -> bool:
    """Whether a cloud-config document installs and starts trackday's power-off timer."""
    if not text.startswith("#cloud-config"):
        return False
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    if not isinstance(document, dict):
        return False
    files = {
        str(f.get("path", "")): str(f.get("content", ""))
        for f in as_list(document.get("write_files"))
        if isinstance(f, dict)
    }
    timer = files.get(f"/etc/systemd/system/{TTL_UNIT}.timer", "")
    service = files.get(f"/etc/systemd/system/{TTL_UNIT}.service", "")
    started = any(_runs_ttl_timer(c) for c in as_list(document.get("runcmd")))
    return "\nOnBootSec=" in f"\n{timer}" and "\nExecStart=" in f"\n{service}" and started


def _has_ttl(resource: Resource, settings: Settings) -> bool:
    if get(resource.inputs, "scheduling.maxRunDuration"):
        return True
    texts = user_data_texts(resource)
    if any(renders_ttl_timer(text) for text in texts):
        return True
    # User data kept secret (or unknown in preview) cannot be read: trust budget.ttlHours then.
    return not texts and _has_secret_user_data(resource) and settings.ttl_hours is not None


def gpu_machines(resource: Resource, settings: Settings) -> list[str]:
    """GPU machines only of the types trackday knows, and only spot or with a time-to-live;
    no auto-scaling group of GPU machines (it replaces a node its time-to-live stopped)."""
    if resource.type == AWS_ASG:
        return _asg(resource, settings)
    found = machine(resource)
    if found is None:
        return []
    cloud, machine_type = found
    if not machine_type or not is_gpu(cloud, machine_type, resource):
        return []
    out = []
    allowed = settings.allowed_machines.get(cloud, frozenset())
    if machine_type not in allowed:
        out.append(
            f"{machine_type} is not an allowed GPU machine on {cloud}; allowed: "
            + (", ".join(sorted(allowed)) or "none")
        )
    bounded = _is_spot(resource) or _has_ttl(resource, settings)
    if not (settings.allow_always_on_gpu or bounded):
        out.append(
            f"{machine_type} is neither spot nor stopped by a time-to-live: set nodes.spot "
            "or budget.ttlHours, or opt out with the pack config allowAlwaysOnGpu"
        )
    return out


def _asg(resource: Resource, settings: Settings) -> list[str]:
    overrides = as_list(get(resource.inputs, "mixedInstancesPolicy.launchTemplate.overrides"))
    types = [str(o.get("instanceType", UNKNOWN)) for o in overrides if isinstance(o, dict)]
    # Without overrides the type is the launch template's (checked on its own): fail closed.
    gpu = not types or any(t == UNKNOWN or is_gpu("aws", t, resource) for t in types)
    if not gpu or settings.allow_always_on_gpu:
        return []
    return [
        "an auto-scaling group of (possibly) GPU machines relaunches a node its time-to-live "
        "powered off; trackday declares none: remove it, or opt out with allowAlwaysOnGpu"
    ]


def aws_imdsv2(resource: Resource, settings: Settings) -> list[str]:
    """EC2 instances, spot requests and launch templates require IMDSv2 session tokens."""
    if resource.type not in (AWS_INSTANCE, AWS_SPOT_REQUEST, AWS_LAUNCH_TEMPLATE):
        return []
    if get(resource.inputs, "metadataOptions.httpTokens") == "required":
        return []
    return ['metadataOptions.httpTokens must be "required" (IMDSv2)']


def user_data_texts(resource: Resource) -> list[str]:
    """The readable user-data documents of a VM resource (base64 decoded where the API wants it)."""
    texts = []
    for value, encoded in _user_data_values(resource):
        if not isinstance(value, str) or value in UNREADABLE:
            continue
        if encoded:
            # Not base64 after all: check it as it is.
            with contextlib.suppress(binascii.Error, ValueError, OSError, EOFError):
                raw = base64.b64decode(value, validate=True)
                # Gzipped user data (aws: infra/nodes.py gzip_base64), which cloud-init unpacks.
                raw = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
                value = raw.decode("utf-8", "replace")
        texts.append(value)
    return texts


def _user_data_values(resource: Resource) -> list[tuple[Any, bool]]:
    """(value, base64-encoded?) for each user-data input the resource sets."""
    found = [
        (get(resource.inputs, path), encoded)
        for path, encoded in _USER_DATA_PATHS.get(resource.type, ())
    ]
    return [(value, encoded) for value, encoded in found if value is not None]


def _has_secret_user_data(resource: Resource) -> bool:
    return any(value in UNREADABLE for value, _ in _user_data_values(resource))
