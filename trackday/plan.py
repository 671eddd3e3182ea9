"""`trackday plan --stack NAME`: the resources a stack declares and what it costs, offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from trackday.failure import fail

# The properties worth a glance per resource type (dotted paths into the inputs).
KEY_INPUTS: dict[str, tuple[str, ...]] = {
    "gcp:storage/bucket:Bucket": (
        "location",
        "uniformBucketLevelAccess",
        "publicAccessPrevention",
        "versioning.enabled",
    ),
    "gcp:storage/bucketIAMMember:BucketIAMMember": ("role", "member"),
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": ("role", "member"),
    "gcp:artifactregistry/repository:Repository": ("location", "format", "repositoryId"),
    "gcp:serviceaccount/account:Account": ("accountId",),
    "gcp:projects/service:Service": ("service",),
    "pulumi:providers:gcp": ("project", "region"),
    "docker-build:index:Image": ("tags", "push", "buildArgs"),
    "docker:index/image:Image": ("imageName", "build.args"),
    "docker:index/container:Container": ("ports", "restart"),
    "docker:index/remoteImage:RemoteImage": ("name",),
    "random:index/randomPassword:RandomPassword": ("length",),
}


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
        from trackday.plan_diff import run

        run(directory or REPO_ROOT, stack, against, as_json)
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


def key_properties(type_: str, inputs: dict[str, Any]) -> str:
    paths = KEY_INPUTS.get(type_) or tuple(k for k, v in inputs.items() if _scalar(v))[:3]
    shown = []
    for path in paths:
        value: Any = inputs
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:
            shown.append(f"{path}={_short(value)}")
    return ", ".join(shown)


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


def _short(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def _usd(amount: float, total: bool = False, digits: int = 4) -> str:
    return f"${amount:.{digits}f}" if amount or total else "-"
