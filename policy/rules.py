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
from typing import Any

from infra import prices
from infra.config import StackConfig
from infra.offline import DeclaredResource, OfflineRun
from policy.ingress import no_open_admin_ingress
from policy.machines import aws_imdsv2, gpu_machines, user_data_texts
from policy.model import (
    UNKNOWN,
    Resource,
    ResourceRule,
    Settings,
    StackRule,
    as_list,
    get,
    settings_for,
)

__all__ = [
    "UNKNOWN",
    "Resource",
    "ResourceRule",
    "Settings",
    "StackRule",
    "aws_imdsv2",
    "gpu_machines",
    "no_open_admin_ingress",
    "settings_for",
]


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
        if get(i, "versioning.enabled") is not True:
            out.append("versioning.enabled must be true")
    elif t in GCS_IAM:
        members = as_list(i.get("member")) + as_list(i.get("members"))
        out += [
            f"grants {i.get('role')} to {m}: the public" for m in members if m in PUBLIC_MEMBERS
        ]
    elif t in GCS_ACLS:
        entities = [i.get("entity"), *as_list(i.get("roleEntities"))]
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
        if get(i, "versioningConfiguration.status") != "Enabled":
            out.append('versioningConfiguration.status must be "Enabled"')
    elif t in AWS_ENCRYPTION:
        algorithms = {
            get(r, "applyServerSideEncryptionByDefault.sseAlgorithm")
            for r in as_list(i.get("rules"))
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
        if get(i, "encryption.services.blob.enabled") is False:
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
                if inline and get(owner.inputs, inline) not in (None, False, UNKNOWN):
                    continue
                if not any(r.type in types and r.refs & owner.handles for r in resources):
                    out.append(f"{owner.type} {owner.name} has no {what}")
    return out


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


# --- Old versions and incomplete uploads do not stay forever ----------------------------------

AWS_LIFECYCLE = (
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2",
)
AZURE_MANAGEMENT_POLICY = "azure-native:storage:ManagementPolicy"


def _enabled(rules: list[Any], path: str) -> bool:
    return any(
        get(r, path) not in (None, UNKNOWN) and r.get("status", "Enabled") == "Enabled"
        for r in rules
        if isinstance(r, dict)
    )


def _gcs_lifecycle(bucket: Resource) -> list[str]:
    rules = [r for r in as_list(bucket.inputs.get("lifecycleRules")) if isinstance(r, dict)]
    expires = any(
        get(r, "action.type") == "Delete"
        and (get(r, "condition.daysSinceNoncurrentTime") or get(r, "condition.numNewerVersions"))
        for r in rules
    )
    aborts = any(get(r, "action.type") == "AbortIncompleteMultipartUpload" for r in rules)
    return [
        f"{bucket.type} {bucket.name} {what}"
        for what, ok in (
            ("keeps old versions forever (no Delete rule on noncurrent versions)", expires),
            ("keeps incomplete uploads forever (no AbortIncompleteMultipartUpload)", aborts),
        )
        if not ok
    ]


def old_versions_expire(resources: list[Resource], settings: Settings) -> list[str]:
    """Versioned buckets delete old versions after a while and abort incomplete uploads
    (storage.keepDeletedDays promises it): S3 by a lifecycle configuration, Cloud Storage by
    its lifecycle rules, Azure by a management policy deleting versions."""
    out = []
    for bucket in resources:
        if bucket.type == GCS_BUCKET:
            out += _gcs_lifecycle(bucket)
            continue
        if bucket.type in AWS_BUCKETS:
            rules = [
                rule
                for r in resources
                if r.type in AWS_LIFECYCLE and r.refs & bucket.handles
                for rule in as_list(r.inputs.get("rules"))
            ]
            needs = (
                ("noncurrentVersionExpiration.noncurrentDays", "old versions"),
                ("abortIncompleteMultipartUpload.daysAfterInitiation", "incomplete uploads"),
            )
            out += [
                f"{bucket.type} {bucket.name} keeps {what} forever (no lifecycle rule {path})"
                for path, what in needs
                if not _enabled(rules, path)
            ]
        elif bucket.type == AZURE_ACCOUNT:
            policies = [
                r
                for r in resources
                if r.type == AZURE_MANAGEMENT_POLICY and r.refs & bucket.handles
            ]
            deletes = [
                rule
                for r in policies
                for rule in as_list(get(r.inputs, "policy.rules"))
                if get(rule, "definition.actions.version.delete") not in (None, UNKNOWN)
                and rule.get("enabled", True) is not False
            ]
            if not deletes:
                out.append(
                    f"{bucket.type} {bucket.name} keeps old blob versions forever "
                    "(no management policy rule deleting versions)"
                )
    return out


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
