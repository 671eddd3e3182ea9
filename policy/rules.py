"""trackday's policies as plain functions: a resource (type, inputs) and the stack's settings in,
violation messages out.

CrossGuard's PolicyPack starts a gRPC server when it is built, so nothing here touches
pulumi_policy: `policy/__main__.py` wraps these functions for `pulumi preview --policy-pack`,
and the tests call them directly, on hand-made resources and on everything the shipped
stacks declare under Pulumi's mocks (`check_offline_run`). Resource types and input names
are the providers' own (pulumi-gcp, pulumi-aws v6 and v7, pulumi-azure-native, pulumi-docker).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from infra import catalog, gateway, prices
from infra.config import StackConfig
from infra.offline import SECRET, DeclaredResource, OfflineRun

# What a policy sees where a value cannot be read: a Pulumi secret, or unknown until `up`.
UNKNOWN = "[unknown]"
UNREADABLE = (SECRET, UNKNOWN)

# Ports that must never be open to the whole internet: SSH, the Docker API (plain and TLS).
ADMIN_PORTS = {22: "SSH", 2375: "the Docker API", 2376: "the Docker API (TLS)"}
OPEN_SOURCES = {"0.0.0.0/0", "::/0", "*", "internet", "any", "0.0.0.0", "::"}


@dataclass(frozen=True)
class Settings:
    """What a stack allows, from its config (and the policy pack's config for opt-outs)."""

    allow_keys: bool = False
    allow_always_on_gpu: bool = False
    ttl_hours: float | None = None
    hourly_budget: float | None = None
    s3_ports: frozenset[int] = frozenset({gateway.PORT})
    allowed_machines: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: {c: frozenset(m) for c, m in catalog.MACHINES.items()}
    )
    config: StackConfig | None = None

    @property
    def guarded_ports(self) -> dict[int, str]:
        return ADMIN_PORTS | dict.fromkeys(self.s3_ports, "the S3 endpoint")


def settings_for(config: StackConfig, overrides: Mapping[str, Any] | None = None) -> Settings:
    """The settings a stack's config implies. `overrides` (policy pack config) can opt out:
    `allowAlwaysOnGpu`, `allowKeys`, `allowedMachineTypes` (a list, narrowing the catalog)."""
    overrides = overrides or {}
    allowed = {c: frozenset(m) for c, m in catalog.MACHINES.items()}
    if "allowedMachineTypes" in overrides:
        wanted = set(overrides["allowedMachineTypes"])
        allowed = {c: frozenset(m & wanted) for c, m in allowed.items()}
    return Settings(
        allow_keys=bool(
            overrides.get("allowKeys", config.gcp is not None and config.gcp.service_account_key)
        ),
        allow_always_on_gpu=bool(overrides.get("allowAlwaysOnGpu", False)),
        ttl_hours=config.budget.ttl_hours,
        hourly_budget=config.budget.hourly,
        s3_ports=frozenset({gateway.PORT, config.local.s3_port}),
        allowed_machines=allowed,
        config=config,
    )


@dataclass(frozen=True)
class Resource:
    """A declared resource as a policy sees it.

    `handles`: the values other resources use to point at it (name, id, bucket or account
    name, URN); `refs`: the values it points at (its `bucket`/`accountName` input, and in
    CrossGuard the URNs its properties depend on). Companion resources (an S3 bucket's
    versioning, a storage account's blob service settings) are matched through these.
    """

    type: str
    name: str
    inputs: Mapping[str, Any]
    handles: frozenset[str] = frozenset()
    refs: frozenset[str] = frozenset()


ResourceRule = Callable[[Resource, Settings], list[str]]
StackRule = Callable[[list[Resource], Settings], list[str]]


def _get(inputs: Mapping[str, Any], path: str, default: Any = None) -> Any:
    value: Any = inputs
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return default
        value = value[part]
    return value


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


# --- Buckets: private, encrypted, versioned ----------------------------------------------------

AWS_BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
AWS_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
AWS_VERSIONING = (
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketVersioningV2:BucketVersioningV2",
)
AWS_ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
AWS_ACLS = ("aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2")
AWS_SSE_ALGORITHMS = {"AES256", "aws:kms", "aws:kms:dsse"}
PUBLIC_ACLS = {"public-read", "public-read-write", "authenticated-read"}
PUBLIC_MEMBERS = {"allUsers", "allAuthenticatedUsers"}
GCS_BUCKET = "gcp:storage/bucket:Bucket"
GCS_IAM = (
    "gcp:storage/bucketIAMMember:BucketIAMMember",
    "gcp:storage/bucketIAMBinding:BucketIAMBinding",
)
GCS_ACLS = (
    "gcp:storage/bucketAccessControl:BucketAccessControl",
    "gcp:storage/defaultObjectAccessControl:DefaultObjectAccessControl",
    "gcp:storage/bucketACL:BucketACL",
)
AZURE_ACCOUNT = "azure-native:storage:StorageAccount"
AZURE_CONTAINER = "azure-native:storage:BlobContainer"
AZURE_BLOB_SERVICE = "azure-native:storage:BlobServiceProperties"
TLS_VERSIONS = {"TLS1_2", "TLS1_3"}


def private_buckets(resource: Resource, settings: Settings) -> list[str]:
    """Each bucket-like resource, on its own: no public access, encryption and versioning on."""
    t, i = resource.type, resource.inputs
    out = []
    if t == GCS_BUCKET:
        # Cloud Storage encrypts every object at rest (Google-managed keys unless `encryption`
        # names a KMS key): encryption needs no input here.
        if i.get("uniformBucketLevelAccess") is not True:
            out.append("uniformBucketLevelAccess must be true (no per-object ACLs)")
        if i.get("publicAccessPrevention") != "enforced":
            out.append('publicAccessPrevention must be "enforced"')
        if _get(i, "versioning.enabled") is not True:
            out.append("versioning.enabled must be true")
    elif t in GCS_IAM:
        members = _list(i.get("member")) + _list(i.get("members"))
        out += [
            f"grants {i.get('role')} to {m}: the public" for m in members if m in PUBLIC_MEMBERS
        ]
    elif t in GCS_ACLS:
        entities = [i.get("entity"), *_list(i.get("roleEntities"))]
        if any(str(e).split(":")[-1] in PUBLIC_MEMBERS for e in entities if e):
            out.append("an ACL entry for allUsers/allAuthenticatedUsers makes the bucket public")
        if i.get("predefinedAcl") in {"publicRead", "publicReadWrite", "authenticatedRead"}:
            out.append(f"predefinedAcl {i.get('predefinedAcl')} makes the bucket public")
    elif t in AWS_BUCKETS or t in AWS_ACLS:
        if i.get("acl") in PUBLIC_ACLS:
            out.append(f"acl {i.get('acl')} makes the bucket public")
    elif t == AWS_PUBLIC_ACCESS_BLOCK:
        flags = (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
        out += [f"{f} must be true" for f in flags if i.get(f) is not True]
    elif t in AWS_VERSIONING:
        if _get(i, "versioningConfiguration.status") != "Enabled":
            out.append('versioningConfiguration.status must be "Enabled"')
    elif t in AWS_ENCRYPTION:
        algorithms = {
            _get(r, "applyServerSideEncryptionByDefault.sseAlgorithm")
            for r in _list(i.get("rules"))
        }
        if not algorithms & AWS_SSE_ALGORITHMS:
            out.append(
                "rules need applyServerSideEncryptionByDefault.sseAlgorithm "
                f"({', '.join(sorted(AWS_SSE_ALGORITHMS))})"
            )
    elif t == AZURE_ACCOUNT:
        if i.get("allowBlobPublicAccess") is not False:
            out.append("allowBlobPublicAccess must be false")
        if i.get("enableHttpsTrafficOnly") is False:
            out.append("enableHttpsTrafficOnly must not be false")
        if i.get("minimumTlsVersion") not in TLS_VERSIONS:
            out.append('minimumTlsVersion must be "TLS1_2" or later')
        if _get(i, "encryption.services.blob.enabled") is False:
            out.append("encryption.services.blob.enabled must not be false")
    elif t == AZURE_CONTAINER:
        if i.get("publicAccess") not in (None, "None"):
            out.append(f'publicAccess {i.get("publicAccess")} must be "None"')
    elif t == AZURE_BLOB_SERVICE and i.get("isVersioningEnabled") is not True:
        out.append("isVersioningEnabled must be true")
    return out


# Each bucket needs companions in the same stack (pulumi-aws keeps these settings out of it).
_COMPANIONS: dict[tuple[str, ...], list[tuple[str, tuple[str, ...], str | None]]] = {
    AWS_BUCKETS: [
        ("BucketPublicAccessBlock", (AWS_PUBLIC_ACCESS_BLOCK,), None),
        (
            "server-side encryption configuration",
            AWS_ENCRYPTION,
            "serverSideEncryptionConfiguration.rule.applyServerSideEncryptionByDefault.sseAlgorithm",
        ),
        ("BucketVersioning resource", AWS_VERSIONING, "versioning.enabled"),
    ],
    (AZURE_ACCOUNT,): [("BlobServiceProperties with versioning", (AZURE_BLOB_SERVICE,), None)],
}


def bucket_companions(resources: list[Resource], settings: Settings) -> list[str]:
    """Every S3 bucket has its public access block, encryption and versioning resources, and
    every Azure storage account its blob service settings (where versioning is turned on).

    pulumi-aws v6's legacy Bucket may carry versioning and encryption inline instead: the
    inline input (third field) then stands for the companion resource."""
    out = []
    for owners, needs in _COMPANIONS.items():
        for owner in (r for r in resources if r.type in owners):
            for what, types, inline in needs:
                if inline and _get(owner.inputs, inline) not in (None, False, UNKNOWN):
                    continue
                if not any(r.type in types and r.refs & owner.handles for r in resources):
                    out.append(f"{owner.type} {owner.name} has no {what}")
    return out


# --- Network: no internet-wide ingress to SSH, the Docker API or the S3 endpoint ---------------


def _port_range(text: Any) -> tuple[int, int] | None:
    """'22', '2375-2376', '*' -> an inclusive range; None for something else."""
    text = str(text).strip()
    if text in ("*", "", "None"):
        return (0, 65535)
    low, _, high = text.partition("-")
    try:
        return int(low), int(high or low)
    except ValueError:
        return None


def _open_to_all(sources: Iterable[Any]) -> list[str]:
    open_ = []
    for source in sources:
        text = str(source).strip().lower()
        if text in OPEN_SOURCES:
            open_.append(str(source))
            continue
        try:
            if ipaddress.ip_network(text, strict=False).prefixlen == 0:
                open_.append(str(source))
        except ValueError:
            pass
    return open_


def _exposed(
    settings: Settings, what: str, sources: list[Any], ranges: list[tuple[int, int]]
) -> list[str]:
    opened = _open_to_all(sources)
    if not opened:
        return []
    hits = sorted(
        {(p, n) for p, n in settings.guarded_ports.items() for lo, hi in ranges if lo <= p <= hi}
    )
    return [f"{what} opens {name} (port {port}) to {', '.join(opened)}" for port, name in hits]


def _aws_rule_ranges(rule: Mapping[str, Any], protocol_key: str) -> list[tuple[int, int]]:
    if str(rule.get(protocol_key, "")).lower() in ("-1", "all"):
        return [(0, 65535)]
    return [(int(rule.get("fromPort", 0) or 0), int(rule.get("toPort", 65535) or 0))]


def no_open_admin_ingress(resource: Resource, settings: Settings) -> list[str]:
    """Security groups, firewall rules, NSG rules and published container ports."""
    t, i = resource.type, resource.inputs
    out: list[str] = []
    if t == "aws:ec2/securityGroup:SecurityGroup":
        for n, rule in enumerate(_list(i.get("ingress"))):
            sources = _list(rule.get("cidrBlocks")) + _list(rule.get("ipv6CidrBlocks"))
            out += _exposed(settings, f"ingress[{n}]", sources, _aws_rule_ranges(rule, "protocol"))
    elif t == "aws:ec2/securityGroupRule:SecurityGroupRule" and i.get("type") == "ingress":
        sources = _list(i.get("cidrBlocks")) + _list(i.get("ipv6CidrBlocks"))
        out += _exposed(settings, "the rule", sources, _aws_rule_ranges(i, "protocol"))
    elif t == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        sources = _list(i.get("cidrIpv4")) + _list(i.get("cidrIpv6"))
        out += _exposed(settings, "the rule", sources, _aws_rule_ranges(i, "ipProtocol"))
    elif t == "gcp:compute/firewall:Firewall" and i.get("direction", "INGRESS") == "INGRESS":
        ranges = []
        for allow in _list(i.get("allows")):
            ports = _list(allow.get("ports")) or ["*"]
            if allow.get("protocol") in ("tcp", "all"):
                ranges += [r for r in map(_port_range, ports) if r]
        out += _exposed(settings, "the firewall", _list(i.get("sourceRanges")), ranges)
    elif t in ("azure-native:network:NetworkSecurityGroup", "azure-native:network:SecurityRule"):
        rules = _list(i.get("securityRules")) if t.endswith("Group") else [i]
        for rule in rules:
            if rule.get("direction") != "Inbound" or rule.get("access") != "Allow":
                continue
            if str(rule.get("protocol", "*")) not in ("*", "Tcp"):
                continue
            sources = [rule.get("sourceAddressPrefix"), *_list(rule.get("sourceAddressPrefixes"))]
            ports = [rule.get("destinationPortRange"), *_list(rule.get("destinationPortRanges"))]
            ranges = [r for r in map(_port_range, [p for p in ports if p is not None]) if r]
            label = f"rule {rule.get('name', '')}".strip()
            out += _exposed(settings, label, [s for s in sources if s is not None], ranges)
    elif t == "docker:index/container:Container":
        for port in _list(i.get("ports")):
            if port.get("external") is None:
                continue
            # Docker publishes on every address unless `ip` says otherwise.
            ip = port.get("ip") or "0.0.0.0"
            external = int(port["external"])
            out += _exposed(settings, "the container", [ip], [(external, external)])
    return out


# --- GPU machines: allowed types, spot or a time-to-live --------------------------------------

_GPU_PREFIXES = {
    "aws": ("g", "p", "inf", "trn", "dl"),
    "gcp": ("a2-", "a3-", "a4-", "g2-", "g4-"),
    "azure": ("Standard_N",),
}


def _machine(resource: Resource) -> tuple[str, str] | None:
    """(cloud, machine type) of a VM resource, or None for anything else."""
    t, i = resource.type, resource.inputs
    if t == "aws:ec2/instance:Instance":
        return "aws", str(i.get("instanceType", ""))
    if t == "aws:ec2/launchTemplate:LaunchTemplate":
        return "aws", str(i.get("instanceType", ""))
    if t == "gcp:compute/instance:Instance":
        return "gcp", str(i.get("machineType", "")).rsplit("/", 1)[-1]
    if t == "azure-native:compute:VirtualMachine":
        return "azure", str(_get(i, "hardwareProfile.vmSize", ""))
    return None


def _is_gpu(cloud: str, machine: str, resource: Resource) -> bool:
    if resource.inputs.get("guestAccelerators"):
        return True
    family = re.match(r"[a-z]+", machine) if cloud == "aws" else None
    if family:
        return family.group(0) in _GPU_PREFIXES["aws"]
    return machine.startswith(_GPU_PREFIXES.get(cloud, ()))


def _is_spot(resource: Resource) -> bool:
    i = resource.inputs
    return (
        _get(i, "instanceMarketOptions.marketType") == "spot"
        or _get(i, "scheduling.provisioningModel") == "SPOT"
        or _get(i, "scheduling.preemptible") is True
        or i.get("priority") == "Spot"
    )


TTL_MARKER = "trackday-ttl.timer"  # the power-off timer infra/bootstrap.py renders


def _has_ttl(resource: Resource, settings: Settings) -> bool:
    if _get(resource.inputs, "scheduling.maxRunDuration"):
        return True
    texts = user_data_texts(resource)
    if any(TTL_MARKER in text for text in texts):
        return True
    # User data kept secret (or unknown in preview) cannot be read: trust budget.ttlHours then.
    return not texts and _has_secret_user_data(resource) and settings.ttl_hours is not None


def gpu_machines(resource: Resource, settings: Settings) -> list[str]:
    """GPU machines only of the types trackday knows, and only spot or with a time-to-live."""
    found = _machine(resource)
    if found is None:
        return []
    cloud, machine = found
    if not machine or not _is_gpu(cloud, machine, resource):
        return []
    out = []
    allowed = settings.allowed_machines.get(cloud, frozenset())
    if machine not in allowed:
        out.append(
            f"{machine} is not an allowed GPU machine on {cloud}; allowed: "
            + (", ".join(sorted(allowed)) or "none")
        )
    bounded = _is_spot(resource) or _has_ttl(resource, settings)
    if not (settings.allow_always_on_gpu or bounded):
        out.append(
            f"{machine} is neither spot nor stopped by a time-to-live: set nodes.spot "
            "or budget.ttlHours, or opt out with the pack config allowAlwaysOnGpu"
        )
    return out


def aws_imdsv2(resource: Resource, settings: Settings) -> list[str]:
    """EC2 instances and launch templates require IMDSv2 session tokens."""
    if resource.type not in ("aws:ec2/instance:Instance", "aws:ec2/launchTemplate:LaunchTemplate"):
        return []
    if _get(resource.inputs, "metadataOptions.httpTokens") == "required":
        return []
    return ['metadataOptions.httpTokens must be "required" (IMDSv2)']


KEY_TYPES = {
    "gcp:serviceaccount/key:Key": "a service-account key",
    "aws:iam/accessKey:AccessKey": "an IAM access key",
    "azuread:index/applicationPassword:ApplicationPassword": "an application password",
    "azuread:index/servicePrincipalPassword:ServicePrincipalPassword": "a principal password",
}


def no_long_lived_keys(resource: Resource, settings: Settings) -> list[str]:
    """Identities, not keys: a key resource only where the stack asks for one."""
    what = KEY_TYPES.get(resource.type)
    if what is None or settings.allow_keys:
        return []
    return [
        f"{what} is a long-lived credential; use the node's identity, or set "
        "gcp.serviceAccountKey / the pack config allowKeys where a runner truly needs one"
    ]


# --- User data: no secret in plain text --------------------------------------------------------

_USER_DATA_PATHS = {
    "aws:ec2/instance:Instance": (("userData", False), ("userDataBase64", True)),
    "aws:ec2/launchTemplate:LaunchTemplate": (("userData", True),),
    "gcp:compute/instance:Instance": (
        ("metadata.user-data", False),
        ("metadata.startup-script", False),
        ("metadataStartupScript", False),
    ),
    "azure-native:compute:VirtualMachine": (("osProfile.customData", True), ("userData", True)),
}
SECRET_PATTERNS = {
    "an AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "a private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "a Swarm join token": re.compile(r"SWMTKN-1-[0-9a-z]{20,}"),
    "an Azure storage key": re.compile(r"AccountKey=[A-Za-z0-9+/=]{20,}"),
    "a service-account key": re.compile(r'"private_key"\s*:'),
    "a credential assignment": re.compile(
        r"(?i)\b[\w-]*(password|passwd|secret|token|auth_key|access_key|secret_key|api_key)[\w-]*"
        r"""\s*[=:]\s*["']?(?![$<{\[])[A-Za-z0-9+/_\-.]{12,}"""
    ),
}


def user_data_texts(resource: Resource) -> list[str]:
    """The readable user-data documents of a VM resource (base64 decoded where the API wants it)."""
    texts = []
    for value, encoded in _user_data_values(resource):
        if not isinstance(value, str) or value in UNREADABLE:
            continue
        if encoded:
            # Not base64 after all: check it as it is.
            with contextlib.suppress(binascii.Error, ValueError):
                value = base64.b64decode(value, validate=True).decode("utf-8", "replace")
        texts.append(value)
    return texts


def _user_data_values(resource: Resource) -> list[tuple[Any, bool]]:
    """(value, base64-encoded?) for each user-data input the resource sets."""
    out = []
    for path, encoded in _USER_DATA_PATHS.get(resource.type, ()):
        head, _, key = path.partition(".")
        holder = resource.inputs.get(head) if key else resource.inputs
        value = holder.get(key or head) if isinstance(holder, Mapping) else holder
        if value is not None:
            out.append((value, encoded))
    return out


def _has_secret_user_data(resource: Resource) -> bool:
    return any(value in UNREADABLE for value, _ in _user_data_values(resource))


def no_plaintext_secrets_in_user_data(resource: Resource, settings: Settings) -> list[str]:
    """User data is readable by anyone who can describe the VM: no credential in it."""
    out = []
    for text in user_data_texts(resource):
        out += [f"user data holds {what}" for what, p in SECRET_PATTERNS.items() if p.search(text)]
    return sorted(set(out))


# --- Cost: within the stack's hourly budget ----------------------------------------------------


def hourly_budget(resources: list[Resource], settings: Settings) -> list[str]:
    """The hourly cost while training (the stack, plus any per-run job) within budget.hourly."""
    if settings.hourly_budget is None or settings.config is None:
        return []
    declared = [
        DeclaredResource(
            type=r.type,
            name=r.name,
            urn=f"urn:{r.type}::{r.name}",
            parent="",
            custom=True,
            protect=False,
            inputs=dict(r.inputs),
        )
        for r in resources
    ]
    estimate = prices.estimate(OfflineRun(stack="", resources=declared), settings.config)
    if estimate.unpriced:
        items = "; ".join(u.item for u in estimate.unpriced)
        return [f"cannot check budget.hourly: not in the price table: {items}"]
    rate = peak_hourly(estimate)
    if rate > settings.hourly_budget:
        return [
            f"estimated ${rate:.4f}/h while training is over budget.hourly "
            f"${settings.hourly_budget:.4f}/h (prices as of {estimate.as_of})"
        ]
    return []


def peak_hourly(estimate: prices.CostEstimate) -> float:
    """What the stack costs per hour while a run is going: standing costs plus the hourly rate
    of items billed only per run (a Vertex AI job)."""
    job_rate = sum(x.per_run / estimate.run_hours for x in estimate.lines if not x.hourly)
    return round(estimate.hourly + job_rate, 4)


# --- The pack ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    check: ResourceRule | None = None
    check_stack: StackRule | None = None


RULES: tuple[Rule, ...] = (
    Rule(
        "buckets-private-encrypted-versioned",
        "Buckets and storage accounts are private, encrypted and versioned.",
        check=private_buckets,
    ),
    Rule(
        "buckets-have-their-settings",
        "Each S3 bucket has its public access block, encryption and versioning resources; "
        "each Azure storage account its blob versioning.",
        check_stack=bucket_companions,
    ),
    Rule(
        "no-internet-admin-ingress",
        "No ingress from 0.0.0.0/0 or ::/0 to SSH, the Docker API or the S3 endpoint.",
        check=no_open_admin_ingress,
    ),
    Rule(
        "gpu-machines-allowed-and-bounded",
        "GPU machines only of the catalog's types, and only spot or with a time-to-live.",
        check=gpu_machines,
    ),
    Rule("aws-imdsv2", "EC2 instances require IMDSv2.", check=aws_imdsv2),
    Rule(
        "no-long-lived-keys",
        "No service-account or access keys unless the stack allows them.",
        check=no_long_lived_keys,
    ),
    Rule(
        "no-plaintext-secret-in-user-data",
        "No credential in plain text in VM user data.",
        check=no_plaintext_secrets_in_user_data,
    ),
    Rule(
        "hourly-cost-within-budget",
        "The estimated hourly cost stays within budget.hourly.",
        check_stack=hourly_budget,
    ),
)


@dataclass(frozen=True)
class Violation:
    rule: str
    resource: str
    message: str


def check(resources: list[Resource], settings: Settings) -> list[Violation]:
    """Every rule over every resource, then the stack rules: what CrossGuard would report."""
    found = []
    for rule in RULES:
        if rule.check is not None:
            for r in resources:
                found += [
                    Violation(rule.name, f"{r.type} {r.name}", m) for m in rule.check(r, settings)
                ]
        if rule.check_stack is not None:
            found += [
                Violation(rule.name, "(stack)", m) for m in rule.check_stack(resources, settings)
            ]
    return found


def from_offline(run: OfflineRun) -> list[Resource]:
    """The custom resources of an offline run, with the handles the mocks give them
    (infra/offline.py answers every create with the id "<name>-id")."""
    out = []
    for r in run.resources:
        if not r.custom:
            continue
        named = [r.inputs.get(k) for k in ("bucket", "accountName", "name")]
        handles = {r.name, f"{r.name}-id", r.urn, *(str(v) for v in named if isinstance(v, str))}
        refs = {
            str(r.inputs[k]) for k in ("bucket", "accountName") if isinstance(r.inputs.get(k), str)
        }
        out.append(Resource(r.type, r.name, r.inputs, frozenset(handles), frozenset(refs)))
    return out


def check_offline_run(run: OfflineRun, config: StackConfig) -> list[Violation]:
    """The whole pack over what a stack declares under Pulumi's mocks."""
    return check(from_offline(run), settings_for(config))
