"""`trackday plan --stack NAME`: the resources a stack declares and what it costs, offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from trackday.failure import fail
from trackday.plan_keys import key_properties


def plan(
    stack: str = typer.Option(
        "dev", "--stack", "-s", help="The stack to plan: Pulumi.<stack>.yaml."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print resources, outputs and costs as JSON."
    ),
    directory: Path = typer.Option(
        None, "--dir", help="The Pulumi project folder (default: this checkout's)."
    ),
    against: str = typer.Option(
        None, "--against", help="Compare with the stack as declared at this git ref."
    ),
) -> None:
    """Show what `pulumi up` would declare for a stack, and what it costs: per hour running,
    per run, and per month with its nodes stopped.

    Runs the Pulumi program under Pulumi's own mock engine: no Pulumi CLI, no cloud
    credentials, nothing created.
    """
    from infra.config import ConfigError
    from infra.plan import plan_stack
    from infra.program import REPO_ROOT

    if against:
        _against(directory or REPO_ROOT, stack, against, as_json)
        return
    try:
        result = plan_stack(directory or REPO_ROOT, stack)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        raise fail(exc, 2) from None
    data = result.to_dict()
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        render(data, Console())


def render(data: dict[str, Any], console: Console) -> None:
    """The plan as tables: resources, then costs with their date and source."""
    console.print(f"[bold]stack {data['stack']}[/] (target {data['target']})")
    resources = Table()
    for column in ("type", "name", "key properties"):
        resources.add_column(column, overflow="fold")
    for r in data["resources"]:
        marks = " [protected]" if r["protect"] else ""
        marks += " [kept by destroy]" if r.get("retainOnDelete") else ""
        resources.add_row(r["type"], r["name"] + marks, key_properties(r["type"], r["inputs"]))
    console.print(resources)
    costs = data["costs"]
    table = Table(title="estimated cost (USD)")
    for column in ("cost item", "detail", "per hour running", "per run", "per month stopped"):
        table.add_column(column, overflow="fold")
    for line in costs["lines"]:
        table.add_row(
            line["item"],
            line["detail"],
            _usd(line["hourly"]),
            _usd(line["perRun"]),
            _usd(line["stoppedMonthly"], digits=2),
        )
    table.add_row(
        "[bold]total[/]",
        f"a run of {costs['runHours']:g} h",
        _usd(costs["hourly"], total=True),
        _usd(costs["perRun"], total=True),
        _usd(costs["stoppedMonthly"], total=True, digits=2),
    )
    console.print(table)
    for item in costs["unpriced"]:
        console.print(
            f"[yellow]not priced:[/] {item['item']}: {item['reason']} (the totals leave it out)"
        )
    console.print(f"prices as of {costs['asOf']}; source: {costs['source']}")


def _usd(amount: float, total: bool = False, digits: int = 4) -> str:
    return f"${amount:.{digits}f}" if amount or total else "-"


def _against(project: Path, stack: str, ref: str, as_json: bool) -> None:
    """The `--against` form of `trackday plan`: print the comparison, or one error line."""
    from trackday.plan_markdown import render_markdown
    from trackday.plan_sides import DiffError, compare

    try:
        diff = compare(project, stack, ref)
    except DiffError as exc:
        raise fail(exc, 2) from None
    if as_json:
        typer.echo(json.dumps(diff.to_dict(), indent=2, sort_keys=True))
    else:
        typer.echo(render_markdown(diff), nl=False)
