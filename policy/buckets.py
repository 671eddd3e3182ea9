"""Buckets: private, encrypted, versioned, with their settings resources, and old versions and
incomplete uploads that do not stay forever (policy/rules.py for why these are plain
functions)."""

from __future__ import annotations

from typing import Any

from policy.model import UNKNOWN, Resource, Settings, as_list, get

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
