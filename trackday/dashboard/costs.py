"""What a stack costs per hour while its GPU machines run, from infra/price_table.py's dated list
prices and the stack file's machine type and node count (as `trackday plan` prices them), and
what the runs the dashboard knows have cost at that price."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infra import price_table, prices
from infra.config import ConfigError, has_node_pool, parse, read_stack_file, stack_file

NAMESPACE = "trackday:"
_NODE_HOURLY = {"aws": price_table.AWS_HOURLY, "azure": price_table.AZURE_HOURLY}


@dataclass(frozen=True)
class Price:
    """A stack's price per hour while it runs (None: not priced, `text` says why), and the
    power-off timers its nodes get (budget.ttlHours, budget.idleMinutes; infra/bootstrap/)."""

    per_hour: float | None
    text: str
    ttl_hours: float | None = None
    idle_minutes: int | None = None

    def spent(self, hours: float) -> float | None:
        return None if self.per_hour is None else round(self.per_hour * hours, 2)


def stack_price(project: Path, name: str) -> Price | None:
    """None for a stack without a file (nothing to price)."""
    try:
        raw = read_stack_file(stack_file(project, name))
        config = parse({k[len(NAMESPACE) :]: v for k, v in raw.items() if k.startswith(NAMESPACE)})
    except (OSError, ConfigError, ValueError) as error:
        return Price(None, f"not priced: {error}")
    timers = {"ttl_hours": config.budget.ttl_hours, "idle_minutes": config.budget.idle_minutes}
    as_of = f"list prices of {price_table.PRICES_AS_OF}"
    nodes = config.nodes
    if config.target in _NODE_HOURLY:
        price = _NODE_HOURLY[config.target].get(nodes.machine_type or "")
        if price is None:
            return Price(None, f"not priced: {nodes.machine_type} is not in the price table")
        hourly = price * nodes.count
        text = f"${hourly:.2f}/h while {nodes.count} x {nodes.machine_type} run ({as_of})"
        return Price(hourly, text, **timers)
    if config.target == "gcp":
        if has_node_pool(config):
            return Price(None, "not priced: the GCE node pool (see `trackday plan`)", **timers)
        job = prices.vertex_job(config)
        if isinstance(job, prices.Unpriced):
            return Price(None, f"not priced: {job.item}: {job.reason}")
        hourly = job.per_run / config.budget.run_hours
        return Price(hourly, f"${hourly:.2f}/h while a Vertex AI job runs ({as_of})")
    if config.target == "local":
        return Price(0.0, "$0: this machine")
    return None
