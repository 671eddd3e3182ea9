"""`trackday donkey ...`: archive, upload, train and fetch DonkeyCar models."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from trackday.failure import fail
from trackday.trainer_env import (
    TrainerEnvError,
    has_nvidia_gpu,
    run_trainer,
    stack_version,
)
from trackday.transfer_bar import transfer_bar
from training import storage
from training.donkeycar.archive import ArchiveError, create_archive
from training.donkeycar.sample_tub import write_sample_tub
from training.donkeycar.tub_inputs import TubFacts, archive_facts, folder_facts

app = typer.Typer(
    help="DonkeyCar: archive tubs, upload, train, fetch models.", no_args_is_help=True
)
console = Console(stderr=True)


def _expected_records(tubs: list[Path]) -> int | None:
    """Records the manifests announce, for the progress bar; None when one is unreadable."""
    total = 0
    for tub in tubs:
        try:
            meta = json.loads((tub / "manifest.json").read_text().splitlines()[4])
            total += meta["current_index"] - len(meta["deleted_indexes"])
        except (OSError, ValueError, IndexError, KeyError, TypeError):
            return None
    return total


def _car_config_dir(config_dir: Path | None) -> Path | None:
    """The folder holding config.py/myconfig.py: as given, else the current one if it has them."""
    if config_dir is not None:
        return config_dir
    here = Path.cwd()
    return here if (here / "config.py").is_file() or (here / "myconfig.py").is_file() else None


def check_model_inputs(facts: TubFacts, model_type: str | None, myconfig: Path | None) -> None:
    """Refuse tubs that never recorded what the model type reads (car config's type by default)."""
    if myconfig:
        facts.configs["myconfig.py"] = myconfig.read_text(errors="replace")
    problem = facts.problem_for(model_type)
    if problem:
        raise fail(problem)


def pack(
    tubs: list[Path],
    output: Path,
    config_dir: Path | None,
    skip_bad: bool,
    model_type: str | None = None,
    myconfig: Path | None = None,
) -> None:
    """Check and archive the tubs with a progress bar; exits with the problems on refusal."""
    config_dir = _car_config_dir(config_dir)
    check_model_inputs(folder_facts(tubs, config_dir), model_type, myconfig)
    columns = (
        TextColumn("checking and packing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("pack", total=_expected_records(tubs))
            manifest = create_archive(
                tubs, output, config_dir, skip_bad, lambda n: progress.advance(task, n)
            )
    except ArchiveError as exc:
        raise fail(str(exc)) from exc
    for name, count in manifest.tubs.items():
        skipped = manifest.skipped.get(name)
        console.print(
            f"  {name}: {count} records" + (f" ({skipped} bad skipped)" if skipped else "")
        )
        for catalog in manifest.skipped_catalogs.get(name, []):
            console.print(f"  {name}: left out {catalog} (empty: donkeycar cannot read it)")
    if not manifest.config_files:
        console.print(
            "  no config.py/myconfig.py: the trainer will use donkeycar's template config"
        )
    size = output.stat().st_size / 1e6
    console.print(f"wrote {output} ({manifest.records} records, {size:.1f} MB)")


@app.command("sample-tub")
def sample_tub(
    folder: Path = typer.Argument(..., help="Where to write the tub (must not hold one yet)."),
    records: int = typer.Option(1000, min=1, help="How many frames."),
    seed: int = typer.Option(0, help="Random seed, for a reproducible tub."),
) -> None:
    """Write a synthetic tub whose steering follows a lane line in the image."""
    try:
        write_sample_tub(folder, records=records, seed=seed)
    except FileExistsError as exc:
        raise fail(str(exc)) from exc
    console.print(f"wrote a sample tub of {records} records to {folder}")


@app.command()
def archive(
    tubs: list[Path] = typer.Argument(None, help="Tub folders (default: data)."),
    config_dir: Path = typer.Option(
        None, "--config-dir", help="Folder with config.py/myconfig.py (default: here, if present)."
    ),
    output: Path = typer.Option(
        None, "-o", "--output", help="Archive file (default: <tub>.tar.zst)."
    ),
    skip_bad: bool = typer.Option(
        False, "--skip-bad", help="Leave bad records out instead of refusing."
    ),
    model_type: str = typer.Option(
        None, help="Check the tubs carry what this model type reads (default: the config's)."
    ),
) -> None:
    """Check tubs and pack them, with the car's config, into one training archive."""
    tubs = tubs or [Path("data")]
    output = output or Path(f"{tubs[0].resolve().name}.tar.zst")
    pack(tubs, output, config_dir, skip_bad, model_type)


@app.command()
def upload(
    archive_file: Path = typer.Argument(..., metavar="ARCHIVE", exists=True, dir_okay=False),
    dest_url: str = typer.Argument(
        ..., help="s3://, gs://, az://, file:// URL or folder; / ends a prefix."
    ),
) -> None:
    """Upload an archive to object storage, verified by checksum."""
    url = dest_url + archive_file.name if dest_url.endswith("/") else dest_url
    try:
        with transfer_bar(console) as progress:
            digest = storage.upload(archive_file, url, progress=progress)
    except storage.StorageError as exc:
        raise fail(str(exc)) from exc
    console.print(f"uploaded {archive_file} to {url} (sha256 {digest})")


@app.command()
def train(
    sources: list[Path] = typer.Argument(
        ..., exists=True, help="Tub folders (trained together), or one training archive."
    ),
    local: bool = typer.Option(False, "--local", help="Train on this machine."),
    output: str = typer.Option(
        "models", help="Folder or URL; the run goes under <output>/<run id>/."
    ),
    model_type: str = typer.Option(None, help="donkeycar model type (default: the config's)."),
    settings: list[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="Override a setting."
    ),
    config_dir: Path = typer.Option(None, "--config-dir", help="config.py/myconfig.py for a tub."),
    myconfig: Path = typer.Option(
        None, "--myconfig", exists=True, dir_okay=False, help="Use this file as myconfig.py."
    ),
    transfer: Path = typer.Option(
        None, "--transfer", exists=True, help="Start from this model (donkey train --transfer)."
    ),
    comment: str = typer.Option(None, "--comment", help="Comment for donkeycar's database.json."),
    donkeycar: str = typer.Option(
        None, "--donkeycar", help="donkeycar version (default: the stack's, else 5.3.0)."
    ),
    stack: str = typer.Option(
        "dev", "--stack", "-s", help="Stack whose donkeycar version is used."
    ),
    allow_cpu: bool = typer.Option(
        False, "--allow-cpu", help="Train on the CPU even on a machine with an NVIDIA GPU."
    ),
    skip_bad: bool = typer.Option(
        False, "--skip-bad", help="Train without records that fail checks."
    ),
    run_id: str = typer.Option(None, help="Name of the run (default: time stamp)."),
) -> None:
    """Train a pilot with donkeycar's own training code (tubs are archived first)."""
    if not local:
        raise fail("only --local trains here; for the cloud use `trackday donkey submit`")
    archives = [s for s in sources if not s.is_dir()]
    if archives and len(sources) > 1:
        raise fail(f"{archives[0]} is an archive: give one archive, or tub folders only")
    if "://" not in output:
        output = str(Path(output).resolve())
    if archives:
        check_model_inputs(archive_facts(archives[0]), model_type, myconfig)
    args = ["--output", output]
    args += ["--model-type", model_type] if model_type else []
    args += [a for s in settings for a in ("--set", s)]
    args += ["--skip-bad"] if skip_bad else []
    args += ["--run-id", run_id] if run_id else []
    args += ["--myconfig", str(myconfig.resolve())] if myconfig else []
    args += ["--transfer", str(transfer.resolve())] if transfer else []
    args += ["--comment", comment] if comment else []
    if has_nvidia_gpu() and not allow_cpu:
        args.append("--require-gpu")  # this machine has a GPU: training on the CPU is a fault
    with tempfile.TemporaryDirectory(prefix="trackday-") as tmp:
        data = sources[0]
        if not archives:
            data = Path(tmp) / f"{sources[0].resolve().name}.tar.zst"
            pack(sources, data, config_dir, skip_bad, model_type, myconfig)
        try:
            code = run_trainer(
                ["--data", str(data.resolve()), *args], donkeycar or stack_version(stack)
            )
        except TrainerEnvError as exc:
            raise fail(str(exc)) from None
    if code:
        raise typer.Exit(code)


# Training on a deployed stack (Vertex AI on gcp): trackday/donkey_cloud.py.
from trackday import donkey_car, donkey_cloud  # noqa: E402  (registers after own commands)

app.command("submit")(donkey_cloud.submit)
app.command("fetch")(donkey_cloud.fetch)
app.command("to-car")(donkey_car.to_car)
