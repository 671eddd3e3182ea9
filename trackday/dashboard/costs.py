"""What a stack costs per hour while its GPU machines run, from infra/prices.py's dated list
prices and the stack file's machine type and node count (as `trackday plan` prices them)."""

from __future__ import annotations

from pathlib import Path

from infra import price_table, prices
from infra.config import ConfigError, has_node_pool, parse, read_stack_file, stack_file

NAMESPACE = "trackday:"
_NODE_HOURLY = {"aws": price_table.AWS_HOURLY, "azure": price_table.AZURE_HOURLY}


def hourly_cost(project: Path, name: str) -> str | None:
    """One line for the home page, None for a stack without a file or on this machine."""
    try:
        raw = read_stack_file(stack_file(project, name))
        config = parse({k[len(NAMESPACE) :]: v for k, v in raw.items() if k.startswith(NAMESPACE)})
    except (OSError, ConfigError, ValueError) as error:
        return f"not priced: {error}"
    as_of = f"list prices of {price_table.PRICES_AS_OF}"
    nodes = config.nodes
    if config.target in _NODE_HOURLY:
        price = _NODE_HOURLY[config.target].get(nodes.machine_type or "")
        if price is None:
            return f"not priced: {nodes.machine_type} is not in the price table"
        return (
            f"${price * nodes.count:.2f}/h while {nodes.count} x {nodes.machine_type} run ({as_of})"
        )
    if config.target == "gcp":
        if has_node_pool(config):
            return "not priced: the GCE node pool (see `trackday plan`)"
        job = prices.vertex_job(config)
        if isinstance(job, prices.Unpriced):
            return f"not priced: {job.item}: {job.reason}"
        hourly = job.per_run / config.budget.run_hours
        return f"${hourly:.2f}/h while a Vertex AI job runs ({as_of})"
    return None
