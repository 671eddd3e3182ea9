"""Watching a stack's DeepRacer runs: `trackday dr summary` (DRfC's dr-summary),
`trackday dr viewer` (DRfC's dr-start-viewer) and `trackday dr gui` (DR_GUI_ENABLE's VNC).

The summary is one screen: every run on the stack's swarm, how many of its tasks run, how
long it has run, and from its metrics in the bucket its iteration, best evaluation progress
and the trend of its training reward; from its workers' logs their simulation speed.
The viewer and the GUI are in trackday/dr_viewer.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from trackday import dr_speed, dr_status
from trackday.dr_commands import DIRECTORY, OUTPUTS, STACK, _context, running_services
from trackday.dr_interrupted import show_interrupted
from trackday.dr_viewer import gui, viewer
from training import storage
from training.deepracer.sim_speed import SimSpeed

SPARKS = "▁▂▃▄▅▆▇█"
TREND_ITERATIONS = 12


@dataclass(frozen=True)
class Progress:
    """What a run's metrics say: its last iteration, best evaluation progress (percent of
    a lap), and the mean training reward of its last iterations, oldest first."""

    iteration: int
    best_progress: float | None
    rewards: tuple[float, ...]


@dataclass(frozen=True)
class RunLine:
    run_id: str
    job: str
    model_prefix: str
    running: int
    replicas: int
    elapsed_s: float | None
    progress: Progress | None
    speeds: Mapping[int, SimSpeed | None] | None = None  # the simulation workers'


def sparkline(values: tuple[float, ...]) -> str:
    if not values:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    return "".join(SPARKS[round((v - low) / span * (len(SPARKS) - 1))] for v in values)


def _created(text: str) -> datetime | None:
    """The engine's CreatedAt (nanoseconds, `Z`) as a time."""
    if not text:
        return None
    head, _, fraction = text.rstrip("Z").partition(".")
    try:
        return datetime.fromisoformat(f"{head}.{(fraction + '000000')[:6]}").replace(tzinfo=UTC)
    except ValueError:
        return None


def run_lines(
    services: list[dr_status.ServiceStatus],
    read: Callable[[str], Progress | None],
    now: datetime,
    speeds: Mapping[str, Mapping[int, SimSpeed | None]] | None = None,
) -> list[RunLine]:
    """One line per run and job, from its services, `read(model_prefix)` and the simulation
    workers' `speeds` by service name (trackday/dr_speed.py)."""
    speeds = speeds or {}
    grouped: dict[tuple[str, str], list[dr_status.ServiceStatus]] = {}
    for service in services:
        grouped.setdefault((service.run_id, service.job), []).append(service)
    lines = []
    for (run_id, job), members in sorted(grouped.items()):
        prefix = next((s.model_prefix for s in members if s.model_prefix), "")
        started = [t for t in (_created(s.created) for s in members) if t]
        lines.append(
            RunLine(
                run_id,
                job,
                prefix,
                sum(s.running for s in members),
                sum(s.replicas for s in members),
                (now - min(started)).total_seconds() if started else None,
                read(prefix) if prefix and job == "training" else None,
                next((speeds[s.name] for s in members if s.name in speeds), None),
            )
        )
    return lines


def read_progress(bucket_url: str, model_prefix: str) -> Progress | None:
    """A run's progress from its metrics; None before the first iteration has any."""
    from training.deepracer.metrics import MetricsError, load_run
    from training.deepracer.run_files import RunFilesError

    try:
        run = load_run(storage.join(bucket_url, model_prefix))
    except (MetricsError, RunFilesError, storage.StorageError):
        return None
    if not run.iterations:
        return None
    evaluated = [it.eval_progress for it in run.iterations if it.eval_progress is not None]
    rewards = tuple(it.reward for it in run.iterations[-TREND_ITERATIONS:] if it.reward is not None)
    return Progress(run.iterations[-1].number, max(evaluated, default=None), rewards)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m"


def render(lines: list[RunLine]) -> Table:
    table = Table(title="DeepRacer runs")
    for column in (
        "run",
        "job",
        "model prefix",
        "tasks",
        "running for",
        "iteration",
        "best progress",
        "reward trend",
        "simulation speed",
    ):
        table.add_column(column, overflow="fold")
    for line in lines:
        progress = line.progress
        best = (
            f"{progress.best_progress:.1f}%"
            if progress and progress.best_progress is not None
            else "-"
        )
        trend = (
            f"{sparkline(progress.rewards)} {progress.rewards[-1]:.1f}"
            if progress and progress.rewards
            else "-"
        )
        table.add_row(
            line.run_id,
            line.job,
            line.model_prefix or "-",
            f"{line.running}/{line.replicas}",
            _duration(line.elapsed_s),
            str(progress.iteration) if progress else "-",
            best,
            trend,
            dr_speed.describe(line.speeds) if line.speeds is not None else "-",
        )
    return table


def summary(stack: str = STACK, directory: Path = DIRECTORY, outputs_file: Path = OUTPUTS) -> None:
    """Every run on the stack: tasks, time running, iteration, best progress, reward trend
    (dr-summary), and each simulation worker's real-time factor and steps per second."""
    _, target = _context(stack, directory, outputs_file, None)
    show_interrupted(target, stack)
    services, speeds = running_services(target)
    if not services:
        typer.echo("no DeepRacer runs")
        return
    with storage.environment(target.storage_env):
        lines = run_lines(
            services,
            lambda prefix: read_progress(target.bucket_url, prefix),
            datetime.now(UTC),
            speeds,
        )
    Console(width=160).print(render(lines))


COMMANDS = {"summary": summary, "viewer": viewer, "gui": gui}
