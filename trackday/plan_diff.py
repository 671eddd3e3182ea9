"""The comparison `trackday plan --against REF` makes: two plans of a stack, by resource
(type and name): added, removed, and changed with the inputs that differ, and the costs on
both sides. `plan_sides.py` makes the plans; `plan_markdown.py` writes the comparison for
the pull-request comment (.github/workflows/pull-request.yml).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Change:
    """One input of a resource that differs: its dotted path and the values on both sides."""

    path: str
    before: Any
    after: Any


@dataclass
class PlanDiff:
    stack: str
    ref: str
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    changed: list[tuple[dict[str, Any], list[Change]]] = field(default_factory=list)
    costs_before: dict[str, Any] | None = None
    costs_after: dict[str, Any] | None = None

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def cost_change(self, key: str) -> tuple[float, float, float]:
        """(before, after, after - before) for a key of COST_KEYS; a missing side costs 0."""
        before = float((self.costs_before or {}).get(key, 0.0))
        after = float((self.costs_after or {}).get(key, 0.0))
        return before, after, round(after - before, 4)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "against": self.ref,
            "added": [{**_brief(r), "inputs": r.get("inputs", {})} for r in self.added],
            "removed": [{**_brief(r), "inputs": r.get("inputs", {})} for r in self.removed],
            "changed": [
                {
                    **_brief(r),
                    "changes": [
                        {"path": c.path, "before": c.before, "after": c.after} for c in changes
                    ],
                }
                for r, changes in self.changed
            ],
            "costs": {
                key: dict(zip(("before", "after", "change"), self.cost_change(key), strict=True))
                for key in COST_KEYS
            }
            | {"unpriced": unpriced(self.costs_before, self.costs_after)},
        }


# The cost totals compared, and how the comment names them.
COST_KEYS = {"hourly": "per hour", "perRun": "per run", "stoppedMonthly": "per month stopped"}


def diff_plans(
    stack: str, ref: str, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> PlanDiff:
    """Compare two `trackday plan --json` documents; None stands for a stack that is not there."""
    old = {_key(r): r for r in (before or {}).get("resources", [])}
    new = {_key(r): r for r in (after or {}).get("resources", [])}
    result = PlanDiff(
        stack=stack,
        ref=ref,
        costs_before=(before or {}).get("costs"),
        costs_after=(after or {}).get("costs"),
    )
    result.added = [new[k] for k in sorted(new.keys() - old.keys())]
    result.removed = [old[k] for k in sorted(old.keys() - new.keys())]
    for key in sorted(old.keys() & new.keys()):
        changes = input_changes(old[key], new[key])
        if changes:
            result.changed.append((new[key], changes))
    return result


def input_changes(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    """The inputs (dotted paths into nested mappings) and the resource options that differ."""
    changes = _walk("", before.get("inputs", {}), after.get("inputs", {}))
    for option in ("protect", "retainOnDelete"):
        old, new = bool(before.get(option)), bool(after.get(option))
        if old != new:
            changes.append(Change(f"({option})", old, new))
    return changes


def _walk(prefix: str, before: Any, after: Any) -> list[Change]:
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[Change] = []
        for k in sorted(before.keys() | after.keys()):
            out += _walk(f"{prefix}.{k}" if prefix else k, before.get(k), after.get(k))
        return out
    return [] if before == after else [Change(prefix, before, after)]


def unpriced(*sides: dict[str, Any] | None) -> list[str]:
    items = {
        f"{u['item']}: {u['reason']}" for side in sides for u in (side or {}).get("unpriced", [])
    }
    return sorted(items)


def _key(resource: dict[str, Any]) -> tuple[str, str]:
    return resource["type"], resource["name"]


def _brief(resource: dict[str, Any]) -> dict[str, Any]:
    return {"type": resource["type"], "name": resource["name"]}
