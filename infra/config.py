"""The stack config, parsed once into typed models: the only module that reads pulumi.Config.

Stack files set keys under the `trackday:` namespace (`trackday:target: gcp`,
`trackday:nodes: {count: 2}`). `load()` reads them from Pulumi; `parse()` validates a plain
mapping (what `trackday plan` and the tests hand in). A bad value raises ConfigError before
any resource exists, naming the key, the value and what is allowed. docs/configuration.md
describes every key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from infra import catalog, cloud_rules
from infra.config_schema import (
    DONKEYCAR_VERSIONS,
    MISSING,
    NAMESPACE,
    TARGETS,
    Aws,
    Azure,
    ConfigError,
    Gpu,
    StackConfig,
)

# The schema's names the rest of the tree reads through this module.
__all__ = [
    "DONKEYCAR_VERSIONS",
    "NAMESPACE",
    "TARGETS",
    "Aws",
    "Azure",
    "ConfigError",
    "StackConfig",
    "has_node_pool",
    "list_stacks",
    "load",
    "parse",
    "read_stack_file",
    "stack_file",
]


def parse(raw: Mapping[str, Any]) -> StackConfig:
    """Validate the `trackday:` keys of a stack (without the namespace) into a StackConfig."""
    try:
        config = StackConfig.model_validate(dict(raw))
    except ValidationError as exc:
        raise _first_error(exc) from None
    return _resolve_target(config)


def load() -> StackConfig:
    """The running stack's config, read from Pulumi (the CLI or the mock engine sets it)."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    cfg = pulumi.Config(NAMESPACE)
    keys = {*runtime_config.CONFIG.get(), *runtime_config.get_config_env()}
    prefix = f"{NAMESPACE}:"
    raw = {
        k[len(prefix) :]: _decode(cfg.get(k[len(prefix) :])) for k in keys if k.startswith(prefix)
    }
    return parse(raw)


def stack_file(root: Path, stack: str) -> Path:
    return root / f"Pulumi.{stack}.yaml"


def read_stack_file(path: Path) -> dict[str, Any]:
    """All config keys of a stack file (namespaced, e.g. `trackday:target`), as YAML values.

    Encrypted values (`secure:`) stay as they are: only the Pulumi CLI can decrypt them.
    """
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no such stack file; "
            f"stacks here: {', '.join(list_stacks(path.parent)) or 'none'}"
        )
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or not isinstance(data.get("config", {}), dict):
        raise ValueError(f"{path}: expected a mapping with a `config:` mapping")
    return dict(data.get("config") or {})


def list_stacks(root: Path) -> list[str]:
    """The stacks whose files ship in `root` (Pulumi.<stack>.yaml)."""
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def _decode(value: str | None) -> Any:
    """Pulumi hands structured values over as JSON text, scalars as plain text."""
    if value is not None and value[:1] in "{[":
        return json.loads(value)
    return value


def _resolve_target(config: StackConfig) -> StackConfig:
    """Checks that depend on the target, and the target's defaults for the GPU machine."""
    if config.target == "gcp" and config.gcp is None:
        raise ConfigError(
            "gcp.project", MISSING, "the gcp target needs your Google Cloud project id"
        )
    if has_node_pool(config) and not config.network.allowed_cidrs:
        raise ConfigError(
            "network.allowedCidrs",
            [],
            f"the {config.target} target needs the address ranges that may "
            "reach the nodes (SSH, Docker API), e.g. [203.0.113.7/32]",
        )
    if not config.is_cloud:
        return config
    _check_cloud_limits(config)
    nodes = config.nodes
    cloud = config.target
    gpu = nodes.gpu.type
    if nodes.machine_type is None:
        gpu = gpu or catalog.DEFAULT_GPU
        if gpu not in catalog.DEFAULT_MACHINE[cloud]:
            raise ConfigError(
                "nodes.gpu.type", gpu, f"allowed on {cloud}: {', '.join(catalog.gpu_types(cloud))}"
            )
        machine_name = catalog.DEFAULT_MACHINE[cloud][gpu]
    else:
        machine_name = nodes.machine_type
    machine = catalog.find_machine(cloud, machine_name)
    if machine is None:
        raise ConfigError(
            "nodes.machineType",
            machine_name,
            f"allowed on {cloud}: {', '.join(catalog.MACHINES[cloud])}",
        )
    if gpu is not None and gpu != machine.gpu:
        raise ConfigError(
            "nodes.gpu.type",
            gpu,
            f"{machine.name} carries {machine.gpu}; name a machine type with "
            f"{gpu} or leave nodes.machineType unset",
        )
    count = nodes.gpu.count or machine.gpu_counts[0]
    if count not in machine.gpu_counts:
        raise ConfigError(
            "nodes.gpu.count",
            count,
            f"{machine.name} takes {' or '.join(map(str, machine.gpu_counts))} GPU(s)",
        )
    resolved = nodes.model_copy(
        update={"machine_type": machine.name, "gpu": Gpu(type=machine.gpu, count=count)}
    )
    update: dict[str, Any] = {"nodes": resolved}
    if config.gcp is not None and has_node_pool(config):
        try:
            zone = cloud_rules.gcp_zone(config.gcp.region, machine.gpu, config.gcp.zone)
        except ValueError as exc:
            raise ConfigError("gcp.zone", config.gcp.zone or MISSING, str(exc)) from None
        update["gcp"] = config.gcp.model_copy(update={"zone": zone})
    return config.model_copy(update=update)


def _check_cloud_limits(config: StackConfig) -> None:
    """Limits the target's cloud sets that the sections alone cannot know (cloud_rules.py)."""
    if config.target == "azure":
        days = config.storage.keep_deleted_days
        if days > cloud_rules.AZURE_MAX_KEEP_DELETED_DAYS:
            raise ConfigError(
                "storage.keepDeletedDays",
                days,
                f"Azure keeps deleted blobs and containers 1 to "
                f"{cloud_rules.AZURE_MAX_KEEP_DELETED_DAYS} days",
            )
    if has_node_pool(config):
        least = cloud_rules.MIN_ROOT_GB[config.target]
        if config.nodes.root_volume_gb < least:
            raise ConfigError(
                "nodes.rootVolumeGb",
                config.nodes.root_volume_gb,
                f"the {config.target} node image's own disk is {least} GB; "
                f"ask for at least {least}",
            )


def has_node_pool(config: StackConfig) -> bool:
    """Whether the stack declares GPU nodes in a swarm (always on aws and azure; opt-in on gcp)."""
    if config.target == "gcp":
        return config.gcp is not None and config.gcp.node_pool
    return config.target in ("aws", "azure")


def _first_error(exc: ValidationError) -> ConfigError:
    """pydantic's first error, worded as key, value and what is allowed."""
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    key = ".".join(loc)
    if err["type"] == "extra_forbidden":
        section = _section_at(loc[:-1])
        names = ", ".join(f.alias or n for n, f in section.model_fields.items()) if section else ""
        return ConfigError(key, err["input"], f"unknown key; allowed here: {names}")
    if err["type"] == "missing":
        return ConfigError(key, MISSING, "this key is required")
    message = err["msg"].removeprefix("Value error, ")
    return ConfigError(key, err["input"], message)


def _section_at(path: list[str]) -> type[BaseModel] | None:
    """The model that holds the keys under `path` (for naming the allowed keys)."""
    model: type[BaseModel] = StackConfig
    for part in path:
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        if field is None:
            return None
        annotation = field.annotation
        candidates = getattr(annotation, "__args__", (annotation,))
        found = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if found is None:
            return None
        model = found
    return model
