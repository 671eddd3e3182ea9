"""trackday's CrossGuard policy pack: `pulumi preview --policy-pack policy`.

Building the PolicyPack starts its gRPC server and serves until Pulumi stops it, so this
file only wraps the plain functions of policy/rules.py. The stack's config reaches the pack
the way Pulumi hands it to every policy pack (pulumi.Config); opt-outs come from the pack's
own config (`--policy-pack-config`): allowAlwaysOnGpu, allowKeys, allowedMachineTypes.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# The pack runs from policy/ in its own virtualenv; the rules reuse infra/ (catalog, prices).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ResourceValidationPolicy,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from infra.config import load
from policy import rules

# The pack config each rule reads (besides the stack config).
OPT_OUTS: dict[str, dict[str, dict[str, Any]]] = {
    "gpu-machines-allowed-and-bounded": {
        "allowAlwaysOnGpu": {"type": "boolean", "default": False},
        "allowedMachineTypes": {"type": "array", "items": {"type": "string"}},
    },
    "no-long-lived-keys": {"allowKeys": {"type": "boolean"}},
}


def plain(value: Any) -> Any:
    """Props as plain data, each value unknown during preview replaced by rules.UNKNOWN."""
    if isinstance(value, Mapping):
        out = {}
        for key in value:
            try:
                out[key] = plain(value[key])
            except UnknownValueError:
                out[key] = rules.UNKNOWN
        return out
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        items = []
        for n in range(len(value)):
            try:
                items.append(plain(value[n]))
            except UnknownValueError:
                items.append(rules.UNKNOWN)
        return items
    return value


def _resource(type_: str, name: str, urn: str, props: Any, depends_on: list[str]) -> rules.Resource:
    inputs = plain(props)
    named = [inputs.get(k) for k in ("id", "bucket", "accountName", "name")]
    handles = {name, urn, *(v for v in named if isinstance(v, str) and v != rules.UNKNOWN)}
    refs = {inputs[k] for k in ("bucket", "accountName") if isinstance(inputs.get(k), str)}
    return rules.Resource(
        type_, name, inputs, frozenset(handles), frozenset(refs | set(depends_on))
    )


def _settings(config: Mapping[str, Any]) -> rules.Settings:
    return rules.settings_for(load(), config)


def _resource_policy(rule: rules.Rule) -> ResourceValidationPolicy:
    def validate(args, report_violation) -> None:
        resource = _resource(args.resource_type, args.name, args.urn, args.props, [])
        for message in rule.check(resource, _settings(args.get_config())):
            report_violation(message)

    return ResourceValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        config_schema=_schema(rule.name),
    )


def _stack_policy(rule: rules.Rule) -> StackValidationPolicy:
    def validate(args, report_violation) -> None:
        resources = [
            _resource(
                r.resource_type,
                r.name,
                r.urn,
                r.props,
                [d.urn for deps in r.property_dependencies.values() for d in deps],
            )
            for r in args.resources
            if not r.resource_type.startswith(("pulumi:", "trackday:"))
        ]
        for message in rule.check_stack(resources, _settings(args.get_config())):
            report_violation(message)

    return StackValidationPolicy(
        name=rule.name,
        description=rule.description,
        validate=validate,
        config_schema=_schema(rule.name),
    )


def _schema(name: str) -> PolicyConfigSchema | None:
    properties = OPT_OUTS.get(name)
    return PolicyConfigSchema(properties=properties) if properties else None


PolicyPack(
    name="trackday",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[_resource_policy(r) if r.check else _stack_policy(r) for r in rules.RULES],
)
