"""What every policy module shares: a resource as a policy sees it, and the stack's settings.

Plain data, no pulumi_policy (see policy/rules.py for why).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from infra import catalog, gateway
from infra.config import StackConfig
from infra.offline import SECRET

# What a policy sees where a value cannot be read: a Pulumi secret, or unknown until `up`.
UNKNOWN = "[unknown]"
UNREADABLE = (SECRET, UNKNOWN)

# Ports that must never be open to the whole internet: SSH, the Docker API (plain and TLS).
ADMIN_PORTS = {22: "SSH", 2375: "the Docker API", 2376: "the Docker API (TLS)"}


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


def get(inputs: Mapping[str, Any], path: str, default: Any = None) -> Any:
    """The value at a dotted path into nested mappings, or `default`."""
    value: Any = inputs
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return default
        value = value[part]
    return value


def as_list(value: Any) -> list[Any]:
    """A value that may be one item, a list, or absent, as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]
