"""Every storage and node setting reaches every cloud target (issue 16, item 4).

Each case changes one setting from the shipped stack's value and checks that what the target
declares (its resources, their inputs and retention, and the stack outputs) changes with it:
a setting a target accepted and then dropped would leave the declaration unchanged.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pytest

from infra.config import NAMESPACE
from tests.infra.stacks import run_stack, shipped_values, with_keys

# gcp declares nodes only with `gcp.nodePool`; its Vertex AI jobs read the node settings too.
TARGETS = {
    "aws": {},
    "azure": {},
    "gcp": {"gcp": {"nodePool": True}, "network": {"allowedCidrs": ["203.0.113.7/32"]}},
}
# A GPU each cloud offers besides the shipped T4.
OTHER_GPU = {"aws": "L4", "azure": "A10", "gcp": "L4"}
SETTINGS = [
    ("storage", {"bucket": "trackday-settings-probe"}),
    ("storage", {"protect": False}),
    ("storage", {"keepDeletedDays": 17}),
    ("nodes", {"count": 3}),
    ("nodes", {"spot": None}),  # None: the opposite of the shipped stack's
    ("nodes", {"rootVolumeGb": 123}),
    ("nodes", {"gpu": None}),  # None: OTHER_GPU
    ("nodes", {"prepullImages": ["registry.example/probe:1"]}),
]


def declared(target: str, **changes: Any) -> tuple:
    run = run_stack(target, with_keys(target, **TARGETS[target], **changes))
    resources = sorted(
        (r.urn, repr(r.inputs), r.retain_on_delete, r.protect) for r in run.resources
    )
    outputs = sorted((k, repr(o.value)) for k, o in run.outputs.items())
    return tuple(resources), tuple(outputs)


@cache
def baseline(target: str) -> tuple:
    return declared(target)


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize(("section", "change"), SETTINGS, ids=lambda v: str(v))
def test_the_setting_changes_what_the_target_declares(target, section, change):
    if change == {"spot": None}:
        change = {"spot": not shipped_values(target)[f"{NAMESPACE}:nodes"].get("spot", False)}
    if change == {"gpu": None}:
        change = {"gpu": {"type": OTHER_GPU[target]}}
    assert declared(target, **{section: change}) != baseline(target), (
        f"{section} {change} has no effect on the {target} target"
    )
