"""trackday's policies as plain functions: a resource (type, inputs) and the stack's settings in,
violation messages out.

CrossGuard's PolicyPack starts a gRPC server when it is built, so nothing here touches
pulumi_policy: `policy/__main__.py` wraps these functions for `pulumi preview --policy-pack`,
and the tests call them directly, on hand-made resources and on everything the shipped
stacks declare under Pulumi's mocks (`check_offline_run`). Resource types and input names
are the providers' own (pulumi-gcp, pulumi-aws v6 and v7, pulumi-azure-native, pulumi-docker).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from infra import prices
from infra.config import StackConfig
from infra.offline import DeclaredResource, OfflineRun
from policy.buckets import bucket_companions, old_versions_expire, private_buckets
from policy.ingress import no_open_admin_ingress
from policy.machines import aws_imdsv2, gpu_machines, user_data_texts
from policy.model import (
    UNKNOWN,
    Resource,
    ResourceRule,
    Settings,
    StackRule,
    settings_for,
)

__all__ = [
    "UNKNOWN",
    "Resource",
    "ResourceRule",
    "Settings",
    "StackRule",
    "aws_imdsv2",
    "bucket_companions",
    "gpu_machines",
    "no_open_admin_ingress",
    "old_versions_expire",
    "private_buckets",
    "settings_for",
]

# --- Keys: identities, not keys -------------------------------------------------------------

KEY_TYPES = {
    "gcp:serviceaccount/key:Key": "a service-account key",
    "aws:iam/accessKey:AccessKey": "an IAM access key",
    "azuread:index/applicationPassword:ApplicationPassword": "an application password",
    "azuread:index/servicePrincipalPassword:ServicePrincipalPassword": "a principal password",
    "gcp:storage/hmacKey:HmacKey": "an HMAC key (an S3-style key pair for Cloud Storage)",
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
        "old-versions-and-uploads-expire",
        "Versioned buckets delete old versions after a while and abort incomplete uploads.",
        check_stack=old_versions_expire,
    ),
    Rule(
        "no-internet-admin-ingress",
        "No ingress to SSH, the Docker API or the S3 endpoint from more than 65,536 IPv4 "
        "addresses together (a /16), from an IPv6 range wider than a /48, from a source that "
        "is no address, or from one unknown at preview.",
        check=no_open_admin_ingress,
    ),
    Rule(
        "gpu-machines-allowed-and-bounded",
        "GPU machines (instances, spot requests, templates, scale sets) only of the catalog's "
        "types, only spot or with a time-to-live, and never in an auto-scaling group.",
        check=gpu_machines,
    ),
    Rule(
        "aws-imdsv2",
        "EC2 instances, spot requests and launch templates require IMDSv2.",
        check=aws_imdsv2,
    ),
    Rule(
        "no-long-lived-keys",
        "No service-account, access or HMAC keys unless the stack allows them.",
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
