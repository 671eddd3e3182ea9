"""`trackday dr start-training | stop-training | start-evaluation | stop-evaluation |
upload-model | logs | status`: DRfC's `dr-*` run commands on a deployed stack.

Registered on the `dr` command group (trackday/dr.py). Settings come from the stack file
(`trackday:deepracer`), where things are from the stack's outputs (trackday/stack.py); the
work is in trackday/dr_runs.py, dr_run_files.py and dr_status.py.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from contract.swarm import SIMULATION_ROLE, TRAINER_ROLE
from infra.workloads.run_target import RunTarget, RunTargetError, run_target
from trackday import dr_run_files, dr_runs, dr_speed, dr_status, dr_trainer_log
from trackday.dr_interrupted import show_interrupted
from trackday.failure import fail
from trackday.stack import read_outputs
from training import storage
from training.deepracer import bucket_io
from training.deepracer.layout import RunLayout
from training.deepracer.settings import DeepRacerSettings, describe_error
from training.deepracer.sim_speed import SimSpeed

console = Console(stderr=True)
STACK = typer.Option(
    ...,
    "--stack",
    "-s",
    help="The deployed stack (Pulumi.<stack>.yaml "
    "holds the run settings; its outputs say where the swarm and bucket are).",
)
DIRECTORY = typer.Option(None, "--dir", help="The Pulumi project folder.")
OUTPUTS = typer.Option(
    None,
    "--outputs",
    help="JSON of `pulumi stack output --json --show-secrets` (instead of the Pulumi CLI).",
)
RUN_ID = typer.Option(None, "--run-id", help="Run id (default: the stack's deepracer.runId).")


def _fail(message: str) -> typer.Exit:
    return fail(message)


STACK_SECTION = "trackday:deepracer"


def load_settings(stack: str | None, directory: Path | None) -> DeepRacerSettings:
    """The `trackday:deepracer` section of Pulumi.<stack>.yaml; DRfC's defaults without one."""
    from pydantic import ValidationError

    if stack is None:
        return DeepRacerSettings()
    from infra.config import read_stack_file, stack_file
    from infra.program import REPO_ROOT

    try:
        raw = read_stack_file(stack_file(directory or REPO_ROOT, stack)).get(STACK_SECTION, {})
        return DeepRacerSettings.model_validate(raw or {})
    except (FileNotFoundError, ValueError) as error:
        detail = describe_error(error) if isinstance(error, ValidationError) else str(error)
        raise fail(detail, 2) from None


def _project(directory: Path | None) -> Path:
    from infra.program import REPO_ROOT

    return directory or REPO_ROOT


def _context(
    stack: str, directory: Path | None, outputs_file: Path | None, run_id: int | None
) -> tuple[DeepRacerSettings, RunTarget]:
    settings = load_settings(stack, directory)
    if run_id is not None:
        settings = settings.model_copy(update={"run_id": run_id})
    outputs = read_outputs(stack, outputs_file, cwd=_project(directory))  # StackError: cli.py
    try:
        return settings, run_target(stack, outputs)
    except RunTargetError as error:
        raise _fail(str(error)) from None


def _say(line: str) -> None:
    console.print(line, highlight=False, markup=False)


def _validate(folder: Path, settings: DeepRacerSettings, tracks_dir: Path | None) -> None:
    """`trackday dr validate`'s checks, on the real track when its file is at hand."""
    from training.deepracer.preflight import preflight, tracks_dir_for

    if tracks_dir_for(settings, tracks_dir) is None:
        _say(
            f"no track file for {settings.world}: the reward function is checked as source "
            "only (`trackday dr tracks` gets the track files)"
        )
    problems = preflight(folder, settings, tracks_dir)
    for problem in problems:
        _say(f"{'warning' if problem.warning else 'problem'}: {problem}")
    if any(not problem.warning for problem in problems):
        raise _fail(f"{folder}: fix the custom files before starting (`trackday dr validate`)")


def _start(settings: DeepRacerSettings, target: RunTarget, job: str, upload) -> None:
    try:
        client = dr_runs.client_for(target)
        dr_runs.check_deploy(client, settings, target, job)
        for url in upload():
            _say(f"uploaded {url}")
        for name in dr_runs.deploy(client, settings, target, job):
            _say(f"started {name}")
    except (dr_runs.RunError, storage.StorageError) as error:
        raise _fail(str(error)) from None


def _follow(
    target: RunTarget, run_id: int, job: str, role: str, worker: int | None, follow: bool = True
) -> None:
    try:
        client = dr_runs.client_for(target)
        service = dr_status.service_of(client, run_id, job, role)
        dr_status.logs(client, service, worker, follow, _say_plain)
    except KeyboardInterrupt:
        _say("stopped following; the run goes on")


def _say_plain(line: str) -> None:
    typer.echo(line)


def start_training(
    stack: str = STACK,
    directory: Path = DIRECTORY,
    outputs_file: Path = OUTPUTS,
    run_id: int = RUN_ID,
    wipe: bool = typer.Option(
        False,
        "--wipe",
        "-w",
        help="Delete the model prefix in the "
        "bucket first (DRfC's -w); without it an existing model stops "
        "the start.",
    ),
    custom_files: Path = typer.Option(
        None,
        "--custom-files",
        help="Folder of the three custom files (default: the stack's customFilesDir).",
    ),
    tracks_dir: Path = typer.Option(
        None, "--tracks-dir", help="Folder of <world>.npy files for the reward check."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not follow the trainer's log."),
) -> None:
    """Upload the custom files and training_params.yaml, then start the trainer and the
    simulation workers (dr-start-training)."""
    settings, target = _context(stack, directory, outputs_file, run_id)
    folder = custom_files or _project(directory) / settings.custom_files_dir
    _validate(folder, settings, tracks_dir)
    _start(
        settings,
        target,
        "training",
        lambda: dr_run_files.upload_training_files(settings, target, folder, wipe),
    )
    if not quiet:
        _follow(target, settings.run_id, "training", TRAINER_ROLE, None)


def start_evaluation(
    stack: str = STACK,
    directory: Path = DIRECTORY,
    outputs_file: Path = OUTPUTS,
    run_id: int = RUN_ID,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Do not follow the worker's log."),
) -> None:
    """Write evaluation_params.yaml and start an evaluation of the model (dr-start-evaluation)."""
    settings, target = _context(stack, directory, outputs_file, run_id)

    def upload() -> list[str]:
        stamp, urls = dr_run_files.upload_evaluation_files(settings, target)
        _say(
            f"evaluation {stamp}: results under "
            f"{target.bucket_url}/{RunLayout.of(settings).evaluation_prefix(stamp)}"
        )
        return urls

    _start(settings, target, "evaluation", upload)
    if not quiet:
        _follow(target, settings.run_id, "evaluation", SIMULATION_ROLE, None)


def _stop(
    stack: str, directory: Path | None, outputs_file: Path | None, run_id: int | None, job: str
) -> None:
    settings, target = _context(stack, directory, outputs_file, run_id)
    client = dr_runs.client_for(target)
    if job == "training":  # its log goes with its containers: keep it in the bucket first
        _say(dr_trainer_log.keep(client, settings, target))
    removed = dr_runs.stop(client, settings.run_id, job, settings.model_prefix)
    for name in removed:
        _say(f"removed {name}")
    if not removed:
        _say(f"run {settings.run_id} has no {job} services")


def stop_training(
    stack: str = STACK,
    directory: Path = DIRECTORY,
    outputs_file: Path = OUTPUTS,
    run_id: int = RUN_ID,
) -> None:
    """Stop a training run: its services, its SageMaker container, its secret
    (dr-stop-training). The model in the bucket stays."""
    _stop(stack, directory, outputs_file, run_id, "training")


def stop_evaluation(
    stack: str = STACK,
    directory: Path = DIRECTORY,
    outputs_file: Path = OUTPUTS,
    run_id: int = RUN_ID,
) -> None:
    """Stop an evaluation (dr-stop-evaluation)."""
    _stop(stack, directory, outputs_file, run_id, "evaluation")


def run_objects(settings: DeepRacerSettings, target: RunTarget) -> tuple[RunLayout, set[str], dict]:
    """What an export reads of a run: its keys (with the custom files' reward function,
    the fallback) and its checkpoint records."""
    layout = RunLayout.of(settings)
    with storage.environment(target.storage_env):
        keys = set(bucket_io.list_keys(target.bucket_url, settings.model_prefix))
        if bucket_io.read_object(storage.join(target.bucket_url, layout.reward_function)):
            keys.add(layout.reward_function)
        records = bucket_io.read_json(storage.join(target.bucket_url, layout.checkpoints_json))
    return layout, keys, records


def upload_model(
    stack: str = STACK,
    directory: Path = DIRECTORY,
    outputs_file: Path = OUTPUTS,
    best: bool = typer.Option(False, "--best", "-b", help="The best checkpoint, not the last."),
    checkpoint: str = typer.Option(None, "--checkpoint", "-c", help="A checkpoint number."),
    prefix: str = typer.Option(
        None,
        "--prefix",
        "-p",
        help="Target prefix (default: deepracer.upload.modelPrefix, else <modelPrefix>-1).",
    ),
    to_bucket: str = typer.Option(
        None, "--bucket", help="Target bucket (default: deepracer.upload.bucket)."
    ),
    local: bool = typer.Option(
        False, "--local", "-L", help="Upload into the stack's own bucket instead."
    ),
    wipe: bool = typer.Option(False, "--wipe", "-w", help="Delete the target prefix first."),
    dry_run: bool = typer.Option(False, "--dry-run", "-d", help="Only list what would be written."),
) -> None:
    """Copy one checkpoint of the model, in the layout DeepRacer's model import reads, to the
    upload bucket (dr-upload-model)."""
    from training.deepracer.model_upload import ModelUploadError, export_params, plan_upload
    from training.deepracer.params import dump_params

    settings, target = _context(stack, directory, outputs_file, None)
    bucket = to_bucket or settings.upload.bucket
    if not (bucket or local):
        raise _fail("no upload bucket: set deepracer.upload.bucket, pass --bucket, or --local")
    target_url = target.bucket_url if local else f"s3://{bucket}"
    target_prefix = prefix or settings.upload_model_prefix
    if (target_url, target_prefix) == (target.bucket_url, settings.model_prefix):
        raise _fail(
            f"the target {target_url}/{target_prefix} is the run itself: pick another "
            "--prefix (DRfC refuses it too)"
        )
    try:
        layout, keys, records = run_objects(settings, target)
        params = export_params(
            settings,
            target_url.removeprefix("s3://").split("/")[0],
            target.bucket.region,
            target_prefix,
        )
        plan = plan_upload(
            layout,
            keys,
            records,
            checkpoint or ("best" if best else "last"),
            target_prefix,
            dump_params(params),
            int(time.time()),
        )
        destination = storage.join(target_url, target_prefix)
        if dry_run:
            for key in [*plan.copies, *plan.writes]:
                _say(f"would write {storage.join(target_url, key)}")
            return
        written = dr_run_files.copy_model(
            target.bucket_url,
            target_url,
            target_prefix,
            plan,
            target.storage_env,
            target.storage_env if local else {},
            wipe,
        )
    except (ModelUploadError, storage.StorageError) as error:
        raise _fail(str(error)) from None
    _say(f"checkpoint {plan.checkpoint}: {len(written)} objects written to {destination}")


def logs(
    which: str = typer.Argument(
        "trainer", help="`trainer` (the rl_coach and SageMaker log) or `worker`."
    ),
    stack: str = STACK,
    directory: Path = DIRECTORY,
    outputs_file: Path = OUTPUTS,
    run_id: int = RUN_ID,
    worker: int = typer.Option(1, "--number", "-n", min=1, help="Which worker (1..N)."),
    evaluation: bool = typer.Option(False, "--evaluation", "-e", help="The evaluation's worker."),
    follow: bool = typer.Option(True, "--follow/--no-follow", help="Keep following."),
) -> None:
    """Follow the trainer's or a simulation worker's log (dr-logs-sagemaker,
    dr-logs-robomaker)."""
    if which not in ("trainer", "worker"):
        raise _fail(f"{which!r}: say `trainer` or `worker`")
    if evaluation and which == "trainer":
        raise _fail("an evaluation has no trainer: `trackday dr logs worker -e`")
    settings, target = _context(stack, directory, outputs_file, run_id)
    job = "evaluation" if evaluation else "training"
    role = TRAINER_ROLE if which == "trainer" else SIMULATION_ROLE
    _follow(target, settings.run_id, job, role, None if which == "trainer" else worker, follow)


def running_services(target: RunTarget) -> tuple[list, dict]:
    """The stack's DeepRacer services and each simulation worker's speed (status, summary)."""
    client = dr_runs.client_for(target)
    found = dr_status.status(client)
    return found, dr_speed.service_speeds(client, found)


def status(stack: str = STACK, directory: Path = DIRECTORY, outputs_file: Path = OUTPUTS) -> None:
    """List the DeepRacer runs on the stack's swarm, their services and tasks, and first the
    runs a spot interruption stopped (from the bucket: shown even when no node answers)."""
    _, target = _context(stack, directory, outputs_file, None)
    show_interrupted(target, stack)
    found, speeds = running_services(target)
    if not found:
        typer.echo("no DeepRacer runs")
        return
    Console(width=160).print(status_table(found, speeds))


def status_table(
    found: list[dr_status.ServiceStatus], speeds: Mapping[str, Mapping[int, SimSpeed | None]]
) -> Table:
    """The services and tasks, with each simulation worker's RTF and steps per second."""
    table = Table(title="DeepRacer runs")
    for column in ("run", "job", "service", "running", "tasks", "simulation speed"):
        table.add_column(column, overflow="fold")
    for item in found:
        table.add_row(
            item.run_id,
            item.job,
            item.name,
            f"{item.running}/{item.replicas}",
            "\n".join(item.tasks),
            dr_speed.describe(speeds[item.name]) if item.name in speeds else "",
        )
    return table


COMMANDS = {
    "start-training": start_training,
    "stop-training": stop_training,
    "start-evaluation": start_evaluation,
    "stop-evaluation": stop_evaluation,
    "upload-model": upload_model,
    "logs": logs,
    "status": status,
}
