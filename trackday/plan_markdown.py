"""A plan comparison as Markdown: a summary line, a diff block of resources, the cost table
(the pull-request comment, and `trackday plan --against` without --json)."""

from __future__ import annotations

import json
from typing import Any

from trackday.plan_diff import COST_KEYS, PlanDiff, unpriced
from trackday.plan_keys import key_properties


def render_markdown(diff: PlanDiff) -> str:
    """The comparison as Markdown: a summary line, a diff block of resources, the cost table."""
    counts = (
        f"{len(diff.added)} to add, {len(diff.changed)} to change, {len(diff.removed)} to remove"
    )
    lines = [f"### `trackday plan --stack {diff.stack}` against `{diff.ref}`", "", counts, ""]
    if not diff.empty:
        lines.append("```diff")
        lines += [f"+ {_line(r)}" for r in diff.added]
        for resource, changes in diff.changed:
            lines.append(f"! {resource['type']} {resource['name']}")
            lines += [f"!     {c.path}: {_show(c.before)} -> {_show(c.after)}" for c in changes]
        lines += [f"- {_line(r)}" for r in diff.removed]
        lines += ["```", ""]
    lines += ["| estimated cost (USD) | before | after | change |", "| --- | ---: | ---: | ---: |"]
    for key, label in COST_KEYS.items():
        before, after, change = diff.cost_change(key)
        lines.append(f"| {label} | {before:.4f} | {after:.4f} | {change:+.4f} |")
    costs = diff.costs_after or diff.costs_before or {}
    if costs:
        lines += ["", f"Prices as of {costs.get('asOf')}; source: {costs.get('source')}."]
    for item in unpriced(diff.costs_before, diff.costs_after):
        lines.append(f"Not priced (left out of the totals): {item}.")
    return "\n".join(lines) + "\n"


def _line(resource: dict[str, Any]) -> str:
    """Type, name and the properties `trackday plan` shows for the type."""
    shown = key_properties(resource["type"], resource.get("inputs", {}))
    return f"{resource['type']} {resource['name']}" + (f" ({shown})" if shown else "")


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."
