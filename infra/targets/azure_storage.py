"""The `azure` target's storage: an account (identities only) and its container, the bucket.

HTTPS only, TLS 1.2 at least, no public blob access, no shared keys, blob versions kept for
`storage.keepDeletedDays` then deleted by a management policy. With `storage.protect` the
account and container are retained by `pulumi destroy` (the target puts them in a resource
group of their own, retained too); without, deleted with their data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_azure_native as azure
import pulumi_random as random

from infra.targets import child

# Built-in role definitions (the same GUIDs in every tenant).
BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"


def role_definition(subscription_id: str, role: str) -> str:
    return (
        f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role}"
    )


@dataclass(frozen=True)
class StorageArgs:
    resource_group: pulumi.Input[str]
    location: str
    container: str
    protect: bool
    keep_deleted_days: int
    subscription_id: pulumi.Input[str]
    deployer_id: pulumi.Input[str]
    deployer_type: pulumi.Input[str]
    account_name: str | None = None
    tags: dict[str, str] | None = None


class Storage(pulumi.ComponentResource):
    """The storage account and its container: private, TLS 1.2+, versioned, identities only."""

    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("trackday:azure:Storage", name, None, opts)
        account_name: pulumi.Input[str] = args.account_name or pulumi.Output.concat(
            "trackday",
            random.RandomString(
                f"{name}-suffix", length=12, special=False, upper=False, opts=child(self)
            ).result,
        )
        self.account = azure.storage.StorageAccount(
            f"{name}-account",
            account_name=account_name,
            resource_group_name=args.resource_group,
            location=args.location,
            kind="StorageV2",
            sku={"name": "Standard_LRS"},
            enable_https_traffic_only=True,
            minimum_tls_version="TLS1_2",
            allow_blob_public_access=False,
            allow_shared_key_access=False,
            default_to_o_auth_authentication=True,
            encryption={
                "key_source": "Microsoft.Storage",
                "services": {"blob": {"enabled": True, "key_type": "Account"}},
            },
            tags=args.tags,
            opts=child(self, retain_on_delete=args.protect),
        )
        self.name = self.account.name
        azure.storage.BlobServiceProperties(
            f"{name}-blob-service",
            account_name=self.name,
            resource_group_name=args.resource_group,
            blob_services_name="default",
            is_versioning_enabled=True,
            delete_retention_policy={"enabled": True, "days": args.keep_deleted_days},
            container_delete_retention_policy={"enabled": True, "days": args.keep_deleted_days},
            opts=child(self),
        )
        # Versions are kept until deleted: this rule deletes them keepDeletedDays after they
        # stopped being current (as the S3 and GCS rules do).
        azure.storage.ManagementPolicy(
            f"{name}-lifecycle",
            account_name=self.name,
            resource_group_name=args.resource_group,
            management_policy_name="default",
            policy={"rules": [version_expiry_rule(args.keep_deleted_days)]},
            opts=child(self),
        )
        self.container = azure.storage.BlobContainer(
            f"{name}-container",
            account_name=self.name,
            resource_group_name=args.resource_group,
            container_name=args.container,
            public_access="None",
            opts=child(self, retain_on_delete=args.protect),
        )
        # Whoever deploys may read and write the data (shared keys are off); a CI deployer is
        # a service principal or managed identity, and ARM refuses a type that does not match.
        self.grant(f"{name}-deployer", args.deployer_id, args.deployer_type, args.subscription_id)
        self.register_outputs({"account": self.name})

    def grant(
        self,
        name: str,
        principal_id: pulumi.Input[str],
        principal_type: pulumi.Input[str],
        subscription_id: pulumi.Input[str],
    ) -> azure.authorization.RoleAssignment:
        """Storage Blob Data Contributor on this account only."""
        return azure.authorization.RoleAssignment(
            name,
            principal_id=principal_id,
            principal_type=principal_type,
            role_definition_id=pulumi.Output.from_input(subscription_id).apply(
                lambda sub: role_definition(sub, BLOB_DATA_CONTRIBUTOR)
            ),
            scope=self.account.id,
            opts=child(self),
        )


def version_expiry_rule(keep_deleted_days: int) -> dict[str, Any]:
    """A lifecycle management rule: block blob versions go `keep_deleted_days` after they
    were replaced or deleted."""
    return {
        "name": "expire-old-versions",
        "enabled": True,
        "type": "Lifecycle",
        "definition": {
            "filters": {"blob_types": ["blockBlob"]},
            "actions": {
                "version": {
                    "delete": {"days_after_creation_greater_than": keep_deleted_days},
                }
            },
        },
    }
