"""`trackday donkey submit` and `trackday donkey fetch`: training on a deployed stack.

Registered on the `donkey` command group (trackday/donkey.py). The work is in
trackday/stack.py (outputs), trackday/runs.py (bucket layout, upload, fetch),
trackday/vertex.py (the Vertex AI job, gcp) and trackday/swarm_training.py with
trackday/swarm_jobs.py (a one-shot Swarm job on the manager, aws and azure).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer
from rich.console import Console

from trackday import donkey_transfer, manager_ssh, runs, swarm_jobs, swarm_training, vertex
from trackday.drive import drive_commands
from trackday.errors import ManagerError
from trackday.failure import fail
from trackday.run_options import RunOptions
from trackday.stack import (
    SWARM_TARGETS,
    StackError,
    SwarmOutputs,
    bucket_access,
    gcp_outputs,
    read_outputs,
    storage_env,
    swarm_outputs,
    target_of,
)
from trackday.transfer_bar import transfer_bar
from training import storage
from training.donkeycar.checks import TrainerError
from training.donkeycar.train import parse_overrides
from training.donkeycar.tub_inputs import archive_facts

console = Console(stderr=True)

# `donkey submit`'s exit status for a job a spot notice stopped (EX_TEMPFAIL: not done yet,
# its node runs it again).
INTERRUPTED_EXIT = 75
STACK_HELP = "The deployed stack (its outputs say where the bucket and image are)."
OUTPUTS_HELP = "JSON of `pulumi stack output --json --show-secrets` (instead of the Pulumi CLI)."
TRANSFER_HELP = (
    "Start from this model: a .h5/.keras file or .savedmodel folder here (uploaded into the "
    "run's folder), or `latest`, a run id or runs/donkeycar/<run id>[/<model>] in the bucket."
)
RunFiles = tuple[str | None, Path | None]  # --transfer, --myconfig


def submit(
    archive: Path = typer.Argument(..., exists=True, dir_okay=False, help="A training archive."),
    stack: str = typer.Option("gcp", "--stack", "-s", help=STACK_HELP),
    outputs_file: Path = typer.Option(None, "--outputs", help=OUTPUTS_HELP),
    follow_job: bool = typer.Option(
        True, "--follow/--no-follow", help="Follow logs until the job ends."
    ),
    model_type: str = typer.Option(
        None, help="donkeycar model type (default: the stack's, else the car config's)."
    ),
    settings: list[str] = typer.Option(
        [], "--set", metavar="KEY=VALUE", help="Override a setting for this run (over the stack's)."
    ),
    allow_cpu: bool = typer.Option(
        False, "--allow-cpu", help="Let the job train on the CPU if it finds no GPU."
    ),
    transfer: str = typer.Option(None, "--transfer", help=TRANSFER_HELP),
    myconfig: Path = typer.Option(
        None, "--myconfig", exists=True, dir_okay=False, help="Use this file as myconfig.py."
    ),
    comment: str = typer.Option(None, "--comment", help="Comment for donkeycar's database.json."),
) -> None:
    """Train in the cloud: upload the archive (unless there) and run the trainer as a job."""
    try:
        options = RunOptions(model_type, parse_overrides(settings), allow_cpu, comment=comment)
        outputs = read_outputs(stack, outputs_file)
        if target_of(outputs) == "local":
            raise StackError(f"stack {stack} is local: train with `trackday donkey train --local`")
        if target_of(outputs) in SWARM_TARGETS:
            if not follow_job:
                raise StackError(
                    "--no-follow: a Swarm job is followed to its end and then removed; "
                    f"on stack {stack} it cannot be left running"
                )
            swarm = swarm_outputs(stack, outputs)
            _check_archive(archive, options.model_type_over(swarm.training.model_type), myconfig)
            _submit_swarm(stack, outputs, archive, options, (transfer, myconfig))
            return
        gcp = gcp_outputs(stack, outputs)
        _check_archive(archive, options.model_type_over(gcp.training.model_type), myconfig)
        with transfer_bar(console) as progress:
            data_url, uploaded = runs.ensure_uploaded(archive, gcp.bucket_url, progress)
        console.print(("uploaded " if uploaded else "already in the bucket: ") + data_url)
        run_id = runs.new_run_id()
        options = _with_run_files(options, (transfer, myconfig), gcp.bucket_url, run_id)
        output_url = runs.runs_url(gcp.bucket_url)
        spec = vertex.custom_job_spec(gcp, data_url, output_url, run_id, stack, options)
        jobs = vertex.VertexJobs(gcp.project, gcp.region)
        with runs.failure_recorded(storage.join(output_url, run_id)):
            name = jobs.create(spec)
    except (
        StackError,
        TrainerError,
        storage.StorageError,
        swarm_jobs.SwarmJobError,
        ManagerError,
        vertex.VertexError,
        runs.RunError,
    ) as exc:
        raise _fail(str(exc)) from None
    console.print(f"run {run_id}: Vertex AI job {name}")
    fetch_hint = f"trackday donkey fetch {run_id} --stack {stack}"
    if not follow_job:
        console.print(f"when it has finished: {fetch_hint}")
        return
    try:
        status = vertex.follow(
            jobs, name, lambda line: console.print(line, highlight=False, markup=False)
        )
    except KeyboardInterrupt:
        console.print(f"stopped following; the job goes on. Results: {fetch_hint}")
        raise typer.Exit(130) from None
    except vertex.VertexError as exc:
        raise _fail(f"{exc}; the job may go on. Results: {fetch_hint}") from None
    if status.state != "JOB_STATE_SUCCEEDED":
        raise _fail(
            f"job {status.state.removeprefix('JOB_STATE_').lower()}: {status.error or 'no message'}"
        )
    console.print(f"done: {fetch_hint}")


def fetch(
    run: str = typer.Argument(..., help="Run id, `latest`, or the run's URL."),
    to: Path = typer.Option(
        None, "--to", help="Folder for the results (default: models/<run id>)."
    ),
    stack: str = typer.Option("gcp", "--stack", "-s", help=STACK_HELP),
    outputs_file: Path = typer.Option(None, "--outputs", help=OUTPUTS_HELP),
) -> None:
    """Download a finished run's model, .tflite and loss plot, verified by checksum."""
    run_url, dest, files = fetch_run(run, to, stack, outputs_file)
    for path in files:
        console.print(f"  {path}")
    console.print(f"fetched {run_url} to {dest}")
    commands = drive_commands(dest)
    if commands:
        console.print(
            "copy the model files into the car's models/ folder (`trackday donkey to-car`)"
        )
        console.print("and drive with one of (the .tflite on a Raspberry Pi):")
        for command in commands:
            console.print(f"  {command}", highlight=False, markup=False, soft_wrap=True)


def fetch_run(
    run: str, to: Path | None, stack: str, outputs_file: Path | None
) -> tuple[str, Path, list[Path]]:
    """Download a finished run (`fetch`, `to-car`): its URL, the folder, the files."""
    try:
        outputs = read_outputs(stack, outputs_file)
        bucket_url = bucket_access(stack, outputs).bucket_url
        with storage.environment(storage_env(outputs)), transfer_bar(console) as progress:
            run_url = runs.resolve_run(bucket_url, run)
            dest = to or Path("models") / run_url.rstrip("/").rsplit("/", 1)[-1]
            return run_url, dest, runs.fetch_run(run_url, dest, progress)
    except (StackError, runs.RunError, storage.StorageError) as exc:
        raise _fail(str(exc)) from None
    except KeyError as exc:
        raise _fail(f"stack {stack} has no output {exc}: run `pulumi up` for it") from None


def _check_archive(archive: Path, model_type: str | None, myconfig: Path | None) -> None:
    """Refuse, before any upload, an archive whose tubs lack what the run's model reads."""
    facts = archive_facts(archive)
    if myconfig:
        facts.configs["myconfig.py"] = myconfig.read_text(errors="replace")
    problem = facts.problem_for(model_type)
    if problem:
        raise StackError(f"{archive}: {problem}")


def _submit_swarm(
    stack: str, outputs: dict, archive: Path, options: RunOptions, files: RunFiles
) -> None:
    """Upload the archive, run the trainer as a one-shot job on the swarm, follow it to its end."""
    swarm = swarm_outputs(stack, outputs)
    with storage.environment(storage_env(outputs)):
        with transfer_bar(console) as progress:
            data_url, uploaded = runs.ensure_uploaded(archive, swarm.bucket_url, progress)
        console.print(("uploaded " if uploaded else "already in the bucket: ") + data_url)
        run_id = runs.new_run_id()
        options = _with_run_files(options, files, swarm.bucket_url, run_id)
        try:
            with runs.failure_recorded(storage.join(runs.runs_url(swarm.bucket_url), run_id)):
                interrupted = _run_swarm_job(swarm, data_url, run_id, options)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
    if interrupted:
        console.print(
            f"interrupted: the node got a spot notice; the job runs again by itself, from its"
            f" checkpoint, when the node comes back; then: trackday donkey fetch {run_id}"
            f" --stack {stack}"
        )
        raise typer.Exit(INTERRUPTED_EXIT)
    console.print(f"done: trackday donkey fetch {run_id} --stack {stack}")


def _run_swarm_job(swarm: SwarmOutputs, data_url: str, run_id: str, options: RunOptions) -> bool:
    """Run the trainer as a one-shot job on the swarm and follow it to its end; whether a
    spot notice interrupted it (its service then stays, for the node's next boot)."""
    job, credentials = swarm_training.training_job(swarm, data_url, run_id, options)
    client = manager_ssh.connect(
        swarm.manager_address,
        swarm.ssh_user,
        swarm.ssh_private_key,
        swarm.ssh_port,
        swarm.manager_host_key,
    )
    console.print(f"run {run_id}: Swarm job {job.name} on {swarm.manager_address}")
    try:
        result = swarm_jobs.run_job(
            client,
            job,
            lambda line: console.print(line, highlight=False, markup=False),
            credentials,
        )
    except KeyboardInterrupt:
        console.print(f"stopped: job {job.name} was removed from the swarm")
        raise
    finally:
        client.close()
    if result.interrupted:
        return True
    if not result.succeeded:
        raise swarm_jobs.SwarmJobError(
            f"job {result.state} (exit code {result.exit_code}): {result.message or 'no message'}"
        )


def _with_run_files(
    options: RunOptions, files: RunFiles, bucket_url: str, run_id: str
) -> RunOptions:
    """The run's options with its starting model and myconfig.py in the bucket (uploaded from
    here where local)."""
    transfer, myconfig = files
    with transfer_bar(console) as progress:
        if transfer:
            url = donkey_transfer.transfer_url(transfer, bucket_url, run_id, progress)
            options = replace(options, transfer=url)
        if myconfig:
            url = donkey_transfer.upload_myconfig(myconfig, bucket_url, run_id, progress)
            options = replace(options, myconfig=url)
    if options.transfer:
        console.print(f"starting from {options.transfer}")
    return options


def _fail(message: str) -> typer.Exit:
    return fail(message)
