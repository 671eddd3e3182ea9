"""The `azure` target's Key Vault: where the nodes form the swarm without SSH from the deployer
(issue 11 item 2; infra/bootstrap/join_store.py says what each node does with it).

One vault per stack, RBAC authorization (no access policies), standard SKU, soft-deleted for
7 days after `pulumi destroy` (its name has a random suffix, so a new stack never collides
with a deleted one). Who may do what, each with a built-in role
(https://learn.microsoft.com/azure/key-vault/general/rbac-guide):

- the manager's own identity: Key Vault Secrets Officer on the vault (writes the join token
  and its "done" with host key; reads the S3 gateway's keys);
- each worker's own identity: Key Vault Secrets User on the join secret only (the deployer
  creates it with a placeholder, which workers read as "not yet": a role at a secret's scope
  needs the secret to exist);
- the deployer: Key Vault Secrets User on the vault, to read "done" (infra/targets/
  azure_ready.py).

The gateway's keys are a secret the deployer sets through ARM (Pulumi secret in, never in
user data or in a command): the manager reads them at boot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi
import pulumi_azure_native as azure
import pulumi_random as random

from infra.bootstrap.spec import JoinStore
from infra.targets import child
from infra.targets.azure_storage import role_definition

SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
JOIN_SECRET = "swarm-join"
GATEWAY_KEYS_SECRET = "gateway-keys"
# What the join secret holds until the manager writes the token (workers wait on it).
PLACEHOLDER = "pending"
SOFT_DELETE_DAYS = 7  # the least Key Vault allows


@dataclass(frozen=True)
class JoinVaultArgs:
    stack: str
    resource_group: pulumi.Input[str]
    location: str
    tenant_id: pulumi.Input[str]
    subscription_id: pulumi.Input[str]
    deployer_id: pulumi.Input[str]
    deployer_type: pulumi.Input[str]
    # The S3 gateway's key file (a Pulumi secret), which the manager reads at boot.
    gateway_keys: pulumi.Input[str]
    tags: dict[str, str]


class JoinVault(pulumi.ComponentResource):
    """The stack's vault, its join and gateway-keys secrets, and the deployer's read role."""

    def __init__(self, name: str, args: JoinVaultArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("trackday:azure:JoinVault", name, None, opts)
        self._subscription_id = args.subscription_id
        self._group = args.resource_group
        suffix = random.RandomString(
            f"{name}-suffix", length=6, special=False, upper=False, opts=child(self)
        )
        self.vault = azure.keyvault.Vault(
            f"{name}-vault",
            resource_group_name=args.resource_group,
            location=args.location,
            vault_name=suffix.result.apply(lambda s: vault_name(args.stack, s)),
            properties={
                "tenant_id": args.tenant_id,
                "sku": {"family": "A", "name": "standard"},
                "enable_rbac_authorization": True,
                "soft_delete_retention_in_days": SOFT_DELETE_DAYS,
            },
            tags=args.tags,
            opts=child(self),
        )
        self.join_secret = self._secret(f"{name}-join", JOIN_SECRET, PLACEHOLDER, ["properties"])
        self._secret(f"{name}-gateway-keys", GATEWAY_KEYS_SECRET, args.gateway_keys, [])
        uri = self.vault.properties.apply(lambda p: p.vault_uri.rstrip("/"))
        self.store: pulumi.Output[JoinStore] = uri.apply(
            lambda base: JoinStore("azure", f"{base}/secrets/{JOIN_SECRET}")
        )
        self.gateway_keys_url = uri.apply(lambda base: f"{base}/secrets/{GATEWAY_KEYS_SECRET}")
        self._grant(
            f"{name}-deployer", args.deployer_id, args.deployer_type, SECRETS_USER, self.vault.id
        )
        self.register_outputs({"vault": self.vault.name})

    def _secret(
        self, name: str, secret_name: str, value: pulumi.Input[str], ignore: list[str]
    ) -> azure.keyvault.Secret:
        return azure.keyvault.Secret(
            name,
            resource_group_name=self._group,
            vault_name=self.vault.name,
            secret_name=secret_name,
            properties={"value": value},
            opts=child(self, ignore_changes=ignore),
        )

    def _grant(
        self,
        name: str,
        principal_id: pulumi.Input[str],
        principal_type: pulumi.Input[str],
        role: str,
        scope: pulumi.Input[str],
    ) -> azure.authorization.RoleAssignment:
        return azure.authorization.RoleAssignment(
            name,
            principal_id=principal_id,
            principal_type=principal_type,
            role_definition_id=pulumi.Output.from_input(self._subscription_id).apply(
                lambda sub: role_definition(sub, role)
            ),
            scope=scope,
            opts=child(self),
        )

    def grant_node(
        self, name: str, role: str, principal_id: pulumi.Input[str], principal_type: str
    ) -> azure.authorization.RoleAssignment:
        """The manager writes (Officer on the vault); a worker reads the join secret (User)."""
        if role == "manager":
            return self._grant(name, principal_id, principal_type, SECRETS_OFFICER, self.vault.id)
        return self._grant(name, principal_id, principal_type, SECRETS_USER, self.join_secret.id)


def vault_name(stack: str, suffix: str) -> str:
    """A vault name (3-24 letters and digits, globally unique): `td`, the stack, a suffix."""
    return f"td{re.sub(r'[^a-z0-9]', '', stack.lower())[:14]}{suffix}"
