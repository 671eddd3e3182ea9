"""`trackday dr ...`: DeepRacer runs the way DRfC users know them (`dr-*` commands).

Thin: reading the stack file and printing; the work is in training/deepracer.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from trackday.dr_commands import load_settings
from trackday.failure import fail
from training.deepracer.preflight import DEFAULT_TRACKS, TRACKS_ENV
from training.deepracer.settings import DeepRacerSettings, RaceType, describe_error

app = typer.Typer(
    help="AWS DeepRacer: import a DRfC setup, validate custom files, start and stop runs, "
    "upload models, logs, metrics.",
    no_args_is_help=True,
)


def _fail(message: str, code: int = 2) -> typer.Exit:
    return fail(message, code)


def _tracks_dir(given: Path | None, settings: DeepRacerSettings) -> Path:
    for candidate in (given, os.environ.get(TRACKS_ENV), DEFAULT_TRACKS / settings.simulator.tag):
        if candidate and any(Path(candidate).glob("*.npy")):
            return Path(candidate)
    if given:
        raise _fail(f"no track files (*.npy) in {given}")
    raise _fail(
        f"no track files: pass --tracks-dir DIR, set {TRACKS_ENV}, or run "
        "`trackday dr tracks` to copy them out of the simulator image"
    )


@app.command("import")
def import_(
    drfc_dir: Path = typer.Argument(
        ..., help="The DRfC folder (system.env, run.env, custom_files/)."
    ),
    out: Path = typer.Option(
        Path("deepracer"),
        "--out",
        help="Where to write the stack fragment and the custom_files folder.",
    ),
    experiment: str = typer.Option(
        None,
        "--experiment",
        "-e",
        help="A DRfC experiment (experiments/<name>/; default: DR_EXPERIMENT_NAME).",
    ),
) -> None:
    """Convert a DRfC configuration into a trackday stack fragment and custom-files folder."""
    from training.deepracer.drfc_import import ImportProblem, import_drfc

    try:
        result = import_drfc(drfc_dir, out, experiment)
    except ImportProblem as error:
        raise _fail(str(error)) from None
    fragment = out / "stack-config.yaml"
    fragment.write_text(result.stack_yaml())
    console = Console()
    console.print(
        f"wrote {fragment} (merge it into Pulumi.<stack>.yaml) and "
        f"{len(result.copied)} custom files into {out / 'custom_files'}"
    )
    if result.unmapped:
        table = Table(title=f"{len(result.unmapped)} DRfC settings not mapped")
        for column in ("file", "setting", "value", "why"):
            table.add_column(column, overflow="fold")
        for item in result.unmapped:
            table.add_row(item.file, item.key, item.value, item.reason)
        console.print(table)


@app.command()
def validate(
    custom_files: Path = typer.Argument(
        None,
        help="Folder with reward_function.py, "
        "model_metadata.json, hyperparameters.json "
        "(default: the stack's customFilesDir).",
    ),
    stack: str = typer.Option(
        None, "--stack", "-s", help="Read run settings from Pulumi.<stack>.yaml."
    ),
    directory: Path = typer.Option(None, "--dir", help="The Pulumi project folder."),
    world: str = typer.Option(None, "--world", help="Track to drive (overrides the stack)."),
    race_type: RaceType = typer.Option(None, "--race-type", help="Overrides the stack."),
    tracks_dir: Path = typer.Option(None, "--tracks-dir", help="Folder of <world>.npy files."),
    png: Path = typer.Option(Path("reward.png"), "--png", help="Where to draw the reward lap."),
    budget_ms: float = typer.Option(100.0, "--budget-ms", help="Time allowed per call."),
) -> None:
    """Check the custom files as training will use them, before anything is deployed."""
    from training.deepracer.reward_plot import plot_reward_lap
    from training.deepracer.validate import validate_custom_files

    settings = load_settings(stack, directory)
    overrides = {k: v for k, v in (("world", world), ("race_type", race_type)) if v}
    if overrides:
        settings = DeepRacerSettings.model_validate(settings.model_dump() | overrides)
    folder = custom_files or Path(settings.custom_files_dir)
    result = validate_custom_files(
        folder, settings, _tracks_dir(tracks_dir, settings), budget_ms / 1000
    )
    for problem in result.problems:
        typer.echo(f"{'warning' if problem.warning else 'problem'}: {problem}", err=True)
    if result.reward and result.reward.ok and result.reward.rewards and result.track:
        plot_reward_lap(result.track, result.scenarios, result.reward.rewards, png)
        rewards = [r for lap in result.reward.rewards for r in lap]
        typer.echo(
            f"reward_function ok on {settings.world} ({settings.race_type.value}): "
            f"{len(rewards)} calls in {len(result.scenarios)} scenarios, rewards "
            f"{min(rewards):.4g}..{max(rewards):.4g}, slowest call "
            f"{result.reward.slowest_s * 1000:.1f} ms; lap drawn in {png}"
        )
    if not result.ok:
        raise typer.Exit(1)
    typer.echo(f"{folder}: all custom files valid")


@app.command("increment-training")
def increment_training(
    stack: str = typer.Option(..., "--stack", "-s", help="The stack whose run to continue."),
    directory: Path = typer.Option(None, "--dir", help="The Pulumi project folder."),
    prefix: str = typer.Option(
        None,
        "--prefix",
        "-p",
        help="New model prefix (default: bump the number after the delimiter).",
    ),
    delimiter: str = typer.Option("-", "--delimiter", "-d"),
) -> None:
    """Continue training from the current model under a new prefix (DRfC's
    dr-increment-training): prints the stack settings to change."""
    from training.deepracer.settings import increment_model

    settings = load_settings(stack, directory)
    try:
        new = increment_model(settings, prefix, delimiter)
    except ValueError as error:
        raise _fail(describe_error(error)) from None
    typer.echo(f"model {settings.model_prefix} -> {new.model_prefix}; set in Pulumi.{stack}.yaml:")
    for path, value in (
        ("modelPrefix", new.model_prefix),
        ("pretrained.enabled", "true"),
        ("pretrained.modelPrefix", settings.model_prefix),
    ):
        typer.echo(f"  pulumi config set --stack {stack} --path 'deepracer.{path}' {value}")


@app.command()
def tracks(
    image: str = typer.Option(None, "--image", help="Simulator image (default: the stack's)."),
    stack: str = typer.Option(None, "--stack", "-s"),
    directory: Path = typer.Option(None, "--dir", help="The Pulumi project folder."),
    out: Path = typer.Option(None, "--out", help=f"Default: {DEFAULT_TRACKS}/<tag>."),
) -> None:
    """Copy the track files out of the simulator image, for `validate`."""
    from training.deepracer.track import TrackError, extract_from_image

    settings = load_settings(stack, directory)
    image = image or settings.simulator.reference
    dest = out or DEFAULT_TRACKS / image.rsplit(":", 1)[-1]
    try:
        found = extract_from_image(image, dest)
    except TrackError as error:
        raise _fail(str(error)) from None
    typer.echo(f"{len(found)} tracks from {image} in {dest}")


# The run commands (start/stop, upload-model, logs, status): trackday/dr_commands.py.
from trackday import dr_commands  # noqa: E402

for _name, _command in dr_commands.COMMANDS.items():
    app.command(_name)(_command)

# metrics, car-model: what a run left behind (trackday/dr_logs.py); summary and viewer
# (trackday/dr_watch.py); DeepRacer on AWS (trackday/droa_commands.py).
from trackday import dr_logs, dr_resume, dr_watch, droa_commands  # noqa: E402

for _module in (dr_logs, dr_watch, dr_resume):
    for _name, _command in _module.COMMANDS.items():
        app.command(_name)(_command)
app.add_typer(droa_commands.app, name="droa")
