"""The `aws` target's S3 bucket: private, encrypted, versioned, TLS only, with lifecycle rules.

What `pulumi destroy` does with it: with `storage.protect` it is retained (left in the
account with its data, dropped from the stack); without, deleted with every object in it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import cloud_rules
from infra.targets import child


@dataclass(frozen=True)
class BucketArgs:
    protect: bool
    keep_deleted_days: int
    name: str | None = None


class Bucket(pulumi.ComponentResource):
    """The stack's S3 bucket: private, encrypted, versioned, TLS only, nothing lost by accident.

    With `protect` the bucket is retained by `pulumi destroy` (left in the account with its
    data, dropped from the stack); without, the destroy deletes it with every object and
    version in it (`forceDestroy`): S3 refuses to delete a bucket that holds objects.
    """

    def __init__(self, name: str, args: BucketArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("trackday:aws:Bucket", name, None, opts)
        self.bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket=args.name,
            force_destroy=not args.protect,
            opts=child(self, retain_on_delete=args.protect),
        )
        bucket_id = self.bucket.id
        access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=bucket_id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child(self),
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket_id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="AES256"
                    ),
                    bucket_key_enabled=True,
                )
            ],
            opts=child(self),
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket_id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                status="Enabled"
            ),
            opts=child(self),
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket_id,
            rules=[lifecycle_rule(args.keep_deleted_days)],
            opts=child(self, depends_on=[versioning]),
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only",
            bucket=bucket_id,
            policy=self.bucket.arn.apply(tls_only_policy),
            opts=child(self, depends_on=[access_block]),
        )
        self.name = self.bucket.bucket
        self.arn = self.bucket.arn
        self.url = self.name.apply(lambda bucket: f"s3://{bucket}")
        self.register_outputs({"url": self.url})


def lifecycle_rule(keep_deleted_days: int) -> aws.s3.BucketLifecycleConfigurationRuleArgs:
    """Old versions go `keep_deleted_days` after they were replaced or deleted, delete markers
    left alone go, and uploads never completed are aborted after a week (their parts bill)."""
    return aws.s3.BucketLifecycleConfigurationRuleArgs(
        id="keep-deleted-then-expire",
        status="Enabled",
        filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
        noncurrent_version_expiration=(
            aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                noncurrent_days=keep_deleted_days
            )
        ),
        expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
            expired_object_delete_marker=True
        ),
        abort_incomplete_multipart_upload=(
            aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                days_after_initiation=cloud_rules.INCOMPLETE_UPLOAD_DAYS
            )
        ),
    )


def tls_only_policy(bucket_arn: str) -> str:
    """A bucket policy refusing every request not made over TLS."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )
