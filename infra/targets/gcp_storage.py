"""GCP's bucket: private, versioned, uniform bucket-level access, public access prevention
enforced, old runs moved to a colder class, deleted versions kept a while, incomplete uploads
aborted, retained by `pulumi destroy` unless the stack opts out."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from infra import cloud_rules
from infra.targets import child

RUNS_PREFIX = "runs/"


@dataclass(frozen=True)
class BucketArgs:
    location: str
    protect: bool
    runs_cold_after_days: int | None
    keep_deleted_days: int
    name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


class Bucket(pulumi.ComponentResource):
    """The stack's bucket: private, versioned, nothing lost by accident."""

    def __init__(self, name: str, args: BucketArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("trackday:gcp:Bucket", name, None, opts)
        rules = [
            # Overwritten or deleted objects stay recoverable this long, then go.
            gcp.storage.BucketLifecycleRuleArgs(
                action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
                condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                    days_since_noncurrent_time=args.keep_deleted_days, with_state="ARCHIVED"
                ),
            ),
            gcp.storage.BucketLifecycleRuleArgs(
                action=gcp.storage.BucketLifecycleRuleActionArgs(
                    type="AbortIncompleteMultipartUpload"
                ),
                condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                    age=cloud_rules.INCOMPLETE_UPLOAD_DAYS
                ),
            ),
        ]
        if args.runs_cold_after_days:
            # Old runs move to a cheaper class; nothing is deleted.
            rules.append(
                gcp.storage.BucketLifecycleRuleArgs(
                    action=gcp.storage.BucketLifecycleRuleActionArgs(
                        type="SetStorageClass", storage_class="NEARLINE"
                    ),
                    condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                        age=args.runs_cold_after_days,
                        matches_prefixes=[RUNS_PREFIX],
                        matches_storage_classes=["STANDARD"],
                        with_state="LIVE",
                    ),
                )
            )
        self.bucket = gcp.storage.Bucket(
            f"{name}-bucket",
            name=args.name,
            location=args.location.upper(),
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            versioning=gcp.storage.BucketVersioningArgs(enabled=True),
            lifecycle_rules=rules,
            # Retained by `pulumi destroy` (data kept, the destroy runs through); without
            # `protect`, deleted with every object in it.
            force_destroy=not args.protect,
            labels=args.labels,
            opts=child(self, retain_on_delete=args.protect),
        )
        self.name = self.bucket.name
        self.url = self.bucket.url
        self.register_outputs({"url": self.url})
