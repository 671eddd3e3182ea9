"""From a finished run to the car: the drive command, and `trackday donkey to-car HOST`.

The car runs `python manage.py drive --model PATH --type TYPE` (donkeycar's
templates/complete.py): a `.tflite` drives as `tflite_<type>`, a `.keras`, `.h5` or
`.savedmodel` as the type it was trained as. `to-car` copies the model files into the car's
`models/` folder with the system's `ssh` and `scp`, so the user's own SSH config, keys and
agent apply, and then checks every copied file's sha256 on the car against the run manifest.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path, PurePosixPath

import typer
from rich.console import Console

from trackday.drive import drive_commands
from trackday.errors import TrackdayError
from trackday.failure import fail
from training.donkeycar.train import RUN_MANIFEST

console = Console(stderr=True)

MODEL_SUFFIXES = (".keras", ".h5", ".savedmodel", ".tflite", ".trt")


class CarError(TrackdayError):
    """Copying to the car failed; the message says what to check."""


def car_files(run_dir: Path) -> dict[str, str]:
    """The run's model files (relative path -> sha256) that belong in the car's models/."""
    outputs: dict[str, str] = json.loads((run_dir / RUN_MANIFEST).read_text())["outputs"]
    return {
        rel: digest
        for rel, digest in outputs.items()
        if PurePosixPath(rel).parts[0].endswith(MODEL_SUFFIXES)
    }


def _ssh_base(ssh_config: Path | None) -> list[str]:
    # BatchMode: never wait for a password or a host-key question nobody sees.
    return ["-o", "BatchMode=yes", *(["-F", str(ssh_config)] if ssh_config else [])]


def _run(command: list[str], what: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        reason = " ".join(result.stderr.split()) or f"exit code {result.returncode}"
        raise CarError(f"{what} failed: {reason}")
    return result.stdout


def copy_to_car(run_dir: Path, host: str, models_dir: str, ssh_config: Path | None) -> list[str]:
    """Copy the run's model files to HOST:models_dir and verify them there; the copied paths."""
    files = car_files(run_dir)
    if not files:
        raise CarError(f"{run_dir} holds no model file to copy")
    base = _ssh_base(ssh_config)
    remote = shlex.quote(models_dir)
    _run(["ssh", *base, host, f"mkdir -p -- {remote}"], f"ssh {host}")
    tops = sorted({PurePosixPath(rel).parts[0] for rel in files})
    _run(
        ["scp", "-r", "-p", *base, *(str(run_dir / t) for t in tops), f"{host}:{models_dir}/"],
        f"scp to {host}",
    )
    listed = " ".join(shlex.quote(rel) for rel in sorted(files))
    output = _run(
        ["ssh", *base, host, f"cd -- {remote} && sha256sum -- {listed}"], f"checksums on {host}"
    )
    found = {}
    for line in output.splitlines():
        digest, _, name = line.partition("  ")
        found[name] = digest
    wrong = [rel for rel, digest in files.items() if found.get(rel) != digest]
    if wrong:
        raise CarError(f"{host}:{models_dir}: checksum differs for {', '.join(wrong)}: copy again")
    return sorted(files)


def to_car(
    host: str = typer.Argument(..., help="The car, as ssh knows it (user@host or a Host alias)."),
    run: str = typer.Option("latest", "--run", help="Run id, `latest`, or the run's URL."),
    from_dir: Path = typer.Option(
        None, "--from", exists=True, file_okay=False, help="A run folder already fetched."
    ),
    models_dir: str = typer.Option(
        "mycar/models", "--models-dir", help="The car's models folder (relative: to its home)."
    ),
    ssh_config: Path = typer.Option(
        None, "--ssh-config", exists=True, dir_okay=False, help="ssh config (default: ssh's own)."
    ),
    stack: str = typer.Option("gcp", "--stack", "-s", help="The deployed stack, for --run."),
    outputs_file: Path = typer.Option(None, "--outputs", help="Stack outputs JSON, for --run."),
) -> None:
    """Copy a run's model files into the car's models/ folder over SSH, verified by checksum."""
    from trackday.donkey_cloud import fetch_run

    run_dir = from_dir or fetch_run(run, None, stack, outputs_file)[1]
    try:
        copied = copy_to_car(run_dir, host, models_dir, ssh_config)
    except CarError as exc:
        raise fail(exc) from None
    console.print(f"copied {len(copied)} file(s) to {host}:{models_dir}, checksums verified")
    for command in drive_commands(run_dir, models_dir.rsplit("/", 1)[-1]):
        console.print(f"  {command}", highlight=False, markup=False, soft_wrap=True)
