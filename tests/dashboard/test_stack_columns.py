"""The home page's nodes, GPUs-per-job and TTL columns read what the targets export.

The stacks' outputs come from the program itself (run offline, as `trackday plan` runs
it), with the shipped stack files changed where it shows: so a renamed output key or a
reader of the wrong key shows here."""

from __future__ import annotations

import pytest

from tests.infra.stacks import run_stack, shipped_values
from trackday.dashboard.stacks import Stack


def _stack(name: str, values: dict) -> Stack:
    outputs = {key: out.value for key, out in run_stack(name, values).outputs.items()}
    return Stack(name, name, outputs["bucketUrl"], outputs)


@pytest.mark.parametrize("target", ["aws", "azure"])
def test_a_swarm_stack_shows_its_nodes_gpus_and_ttl(target: str) -> None:
    values = shipped_values(target)
    values["trackday:nodes"] = {**values["trackday:nodes"], "count": 3}
    values["trackday:budget"] = {**values.get("trackday:budget", {}), "ttlHours": 5}
    stack = _stack(target, values)
    assert stack.node_count == 3
    assert stack.gpus_per_job == 1
    assert stack.max_run_hours == 5


def test_a_gcp_stack_shows_its_accelerators_per_job() -> None:
    stack = _stack("gcp", shipped_values("gcp"))
    assert stack.gpus_per_job == stack.outputs["training"]["acceleratorCount"] >= 1
    assert stack.node_count == "—"  # Vertex AI jobs: no node pool by default


def test_a_stack_without_outputs_shows_dashes() -> None:
    stack = Stack("dev", "local", None, None)
    assert (stack.node_count, stack.gpus_per_job, stack.max_run_hours) == ("—", "—", None)
