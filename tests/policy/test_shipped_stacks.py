"""The whole pack over the resources every shipped stack declares under Pulumi's mocks."""

from __future__ import annotations

import pytest

from infra import config
from policy import rules
from tests.infra.stacks import SHIPPED, run_stack, shipped_values, with_keys


def _violations(stack: str, values: dict) -> list[rules.Violation]:
    prefix = f"{config.NAMESPACE}:"
    parsed = config.parse({k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)})
    return rules.check_offline_run(run_stack(stack, values), parsed)


@pytest.mark.parametrize("stack", SHIPPED)
def test_every_shipped_stack_passes_the_whole_pack(stack):
    assert _violations(stack, shipped_values(stack)) == []


def test_the_pack_sees_what_a_stack_declares():
    """The same run with a budget below the Vertex AI job's rate is caught, by the real plan."""
    found = _violations("gcp", with_keys("gcp", budget={"hourly": 0.05}))
    assert [v.rule for v in found] == ["hourly-cost-within-budget"]
    assert "over budget.hourly $0.0500/h" in found[0].message
