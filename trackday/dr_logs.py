"""`trackday dr metrics | car-model`: what a run left behind, read where it lies.

Registered on the `dr` command group (trackday/dr.py). The reading is in
training/deepracer/metrics.py (and run_files.py, simtrace.py), the car package in
training/deepracer/car_model.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from trackday.failure import fail
from training.deepracer.metrics import RunMetrics


def _fail(message: str) -> typer.Exit:
    return fail(message, 2)


def _shown(value: float | None, scale: float = 1.0) -> str:
    return "-" if value is None else f"{value / scale:.2f}"


def _print_run(found: RunMetrics, top: int, console: Console) -> None:
    from training.deepracer.metrics import best_iterations

    if found.iterations:
        table = Table(title=f"best iterations by evaluation {found.metric.value}")
        for column in (
            "iteration",
            "eval progress %",
            "eval laps",
            "eval lap time s",
            "training reward",
            "training progress %",
            "training laps",
        ):
            table.add_column(column, justify="right")
        for entry in best_iterations(found.iterations, found.metric, top):
            table.add_row(
                str(entry.number),
                _shown(entry.eval_progress),
                f"{entry.eval_laps}/{len(entry.evaluation)}",
                _shown(entry.eval_lap_ms, 1000),
                _shown(entry.reward),
                _shown(entry.progress),
                f"{entry.laps}/{len(entry.training)}",
            )
        console.print(table)
    for key in ("best_checkpoint", "last_checkpoint"):
        record = found.checkpoints.get(key) or {}
        if record.get("name"):
            console.print(
                f"{key.replace('_', ' ')}: {record['name']} "
                f"(mean {found.metric.value} {record.get('avg_eval_metric')})"
            )
    if found.evaluations:
        runs = Table(title="evaluations")
        for column in ("evaluation", "laps", "best lap s", "lap times s", "mean progress %"):
            runs.add_column(column, justify="right")
        for run in found.evaluations:
            times = " ".join(_shown(t.lap_ms, 1000) for t in run.trials)
            runs.add_row(
                run.id,
                f"{run.laps}/{len(run.trials)}",
                _shown(run.best_lap_ms, 1000),
                times,
                _shown(run.progress),
            )
        console.print(runs)
    for note in found.notes:
        console.print(f"note: {note}", highlight=False)


def metrics(
    run: str = typer.Argument(
        ...,
        help="A run's model prefix (s3://BUCKET/MODEL-PREFIX, gs://, "
        "az://, a local folder), or a log download from DeepRacer on "
        "AWS or the console (its .tar.gz or folder).",
    ),
    png: Path = typer.Option(
        None,
        "--png",
        help="Where to draw the plot (default metrics.png; none with --json unless given).",
    ),
    top: int = typer.Option(5, "--top", min=1, help="How many best checkpoints to list."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON on stdout."),
) -> None:
    """Reward, progress and laps per iteration over every worker, the best checkpoints and the
    evaluations with their lap times, from any simulator version's files. A run resumed after
    spot interruptions is drawn as one curve over all its prefixes."""
    from training.deepracer.interruption import load_chain
    from training.deepracer.metrics import MetricsError
    from training.deepracer.metrics_json import run_json
    from training.deepracer.metrics_plot import plot_metrics
    from training.deepracer.run_files import RunFilesError
    from training.deepracer.simtrace import SimtraceError
    from training.storage import StorageError

    try:
        prefixes, found = load_chain(run)
    except (MetricsError, RunFilesError, SimtraceError, StorageError) as error:
        raise _fail(str(error)) from None
    if png is None and not as_json:
        png = Path("metrics.png")
    if png is not None and found.iterations:
        plot_metrics(found.iterations, found.simtrace, png, run)
    if as_json:
        typer.echo(json.dumps(run_json(found, top)))
        return
    console = Console()
    if len(prefixes) > 1:
        console.print(f"one run over {len(prefixes)} prefixes: {' -> '.join(prefixes)}")
    _print_run(found, top, console)
    console.print(
        f"{found.layout} run, {found.workers} worker(s), {len(found.iterations)} "
        f"iterations, {len(found.evaluations)} evaluations"
        + (f"; plot in {png}" if found.iterations else "")
    )


def car_model(
    run: str = typer.Argument(..., help="The run's model prefix, e.g. s3://BUCKET/PREFIX."),
    out: str = typer.Option(
        ".",
        "--out",
        "-o",
        help="A folder or bucket prefix (gets "
        "carfile.tar.gz) or a file name ending .tar.gz; s3://, gs://, az:// "
        "or local.",
    ),
    checkpoint: int = typer.Option(
        None, "--checkpoint", "-c", help="Checkpoint number (default: the best one)."
    ),
    last: bool = typer.Option(False, "--last", help="The last checkpoint instead of the best."),
) -> None:
    """Build the model package the physical car loads (DRfC's dr-upload-car-zip), from the
    run's bucket at the checkpoint asked for."""
    from training.deepracer.car_model import CarModelError, build_car_model, write_car_model
    from training.storage import StorageError

    if checkpoint is not None and last:
        raise _fail("give --checkpoint N or --last, not both")
    which = checkpoint if checkpoint is not None else ("last" if last else "best")
    try:
        model = build_car_model(run, which)
        target = write_car_model(model, out)
    except (CarModelError, StorageError, OSError) as error:
        raise _fail(str(error)) from None
    typer.echo(
        f"wrote {target}: checkpoint {model.checkpoint}, "
        f"{len(model.metadata['action_space'])} actions, {len(model.archive)} bytes; "
        "upload it in the car's console (Models > Upload)"
    )


COMMANDS = {"metrics": metrics, "car-model": car_model}
