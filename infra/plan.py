"""What a stack file would declare and cost, worked out offline (no Pulumi CLI, no credentials).

`plan_stack` reads Pulumi.<stack>.yaml, runs the program under Pulumi's mock engine
(infra/offline.py) and prices the result (infra/prices.py). `trackday plan` prints it; the
tests and benchmarks call it directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra import config as stack_config
from infra import offline, prices, program
from infra.offline import OfflineRun


@dataclass
class Plan:
    stack: str
    config: stack_config.StackConfig
    run: OfflineRun
    costs: prices.CostEstimate

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: resources (type, name, parent, protect, retainOnDelete, inputs),
        outputs and costs."""
        return {
            "stack": self.stack,
            "target": self.config.target,
            "resources": [
                {
                    "type": r.type,
                    "name": r.name,
                    "parent": r.parent.rsplit("::", 1)[-1] if r.parent else None,
                    "protect": r.protect,
                    "retainOnDelete": r.retain_on_delete,
                    "inputs": r.inputs,
                }
                for r in self.run.resources
                if r.custom
            ],
            "outputs": {
                name: offline.SECRET if out.secret else out.value
                for name, out in self.run.outputs.items()
            },
            "costs": self.costs.to_dict(),
        }


def plan_stack(root: Path, stack: str) -> Plan:
    """Plan the stack whose file is `root`/Pulumi.<stack>.yaml."""
    values = stack_config.read_stack_file(stack_config.stack_file(root, stack))
    secure = [k for k, v in values.items() if isinstance(v, dict) and "secure" in v]
    if secure:
        raise ValueError(
            f"{', '.join(secure)}: encrypted values cannot be read offline; "
            "plan a copy of the stack file without them"
        )
    prefix = f"{stack_config.NAMESPACE}:"
    parsed = stack_config.parse(
        {k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}
    )
    run = offline.run_offline(
        lambda: program.build(stack_config.load()), stack, offline.stack_config(values)
    )
    return Plan(stack=stack, config=parsed, run=run, costs=prices.estimate(run, parsed))
