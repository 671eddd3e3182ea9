"""`trackday dr resume`: start a run a spot notice interrupted again, where it stopped.

As DRfC users do by hand with `dr-increment-training` then `dr-start-training`: the run goes on
under a new model prefix (the number after the last '-' bumped, or '-1' added) whose
`pretrained` is the interrupted prefix at its last checkpoint, with the stack's other settings
and the custom files of the stack's folder, under the run id it had. The services the node's
handler left at zero replicas go first; the two prefixes are linked in the bucket
(training/deepracer/interruption.py), so `dr status` and `dr summary` show the chain.
With `--from-stack`, the run was another stack's, in another bucket (its spot capacity gone):
its checkpoint is first copied into this stack's bucket (training/deepracer/checkpoint_copy.py).
"""

from __future__ import annotations

from pathlib import Path

import typer

from infra.workloads.run_target import RunTarget
from trackday import dr_run_files, dr_runs
from trackday.dr_commands import (
    DIRECTORY,
    OUTPUTS,
    STACK,
    _context,
    _fail,
    _project,
    _say,
    _start,
    _validate,
)
from training import storage
from training.deepracer import checkpoint_copy, interruption
from training.deepracer.settings import DeepRacerSettings, describe_error, increment_model


def resumed_settings(settings: DeepRacerSettings, record: interruption.Interruption):
    """The stack's settings for the run that continues `record`: its run id, a new prefix,
    pretrained from the interrupted prefix's last checkpoint (the prefix the node's handler
    prepared, where it did)."""
    base = settings.model_copy(
        update={"model_prefix": record.model_prefix, "run_id": record.run_id}
    )
    new = increment_model(base, record.prepared)
    pretrained = new.pretrained.model_copy(update={"checkpoint": "last"})
    return new.model_copy(update={"pretrained": pretrained})


def resume(
    stack: str = STACK,
    directory: Path = DIRECTORY,
    outputs_file: Path = OUTPUTS,
    prefix: str = typer.Option(
        None,
        "--prefix",
        "-p",
        help="The interrupted model prefix (default: the stack's deepracer.modelPrefix).",
    ),
    custom_files: Path = typer.Option(
        None,
        "--custom-files",
        help="Folder of the three custom files (default: the stack's customFilesDir).",
    ),
    from_stack: str = typer.Option(
        None,
        "--from-stack",
        help="The stack whose run it was, when its bucket is not this stack's: its last"
        " checkpoint is copied into this stack's bucket first.",
    ),
    from_outputs: Path = typer.Option(
        None, "--from-outputs", help="JSON of the --from-stack stack's outputs (as --outputs)."
    ),
) -> None:
    """Resume a run a spot interruption stopped: a new model prefix from its last checkpoint,
    the same settings (dr-increment-training + dr-start-training), on this stack."""
    settings, target = _context(stack, directory, outputs_file, None)
    interrupted = prefix or settings.model_prefix
    try:
        if from_stack:
            _copy_from(from_stack, directory, from_outputs, target, interrupted)
        with storage.environment(target.storage_env):
            record = interruption.resumable(target.bucket_url, interrupted)
        new = resumed_settings(settings, record)
    except storage.StorageError as error:
        raise _fail(str(error)) from None
    except ValueError as error:
        raise _fail(describe_error(error)) from None
    folder = custom_files or _project(directory) / settings.custom_files_dir
    _validate(folder, new, None)
    try:
        client = dr_runs.client_for(target)
        for name in dr_runs.stop(client, record.run_id, "training", record.model_prefix):
            _say(f"removed {name} (left at zero replicas by the interruption)")
    except dr_runs.RunError as error:
        raise _fail(str(error)) from None
    _start(
        new,
        target,
        "training",
        # A prefix the node's handler prepared holds only what this writes again.
        lambda: dr_run_files.upload_training_files(new, target, folder, wipe=bool(record.prepared)),
    )
    try:
        with storage.environment(target.storage_env):
            interruption.link(target.bucket_url, record, new.model_prefix)
    except storage.StorageError as error:
        raise _fail(f"run started, but the resume link was not written: {error}") from None
    _say(
        f"run {record.run_id} resumed: {record.model_prefix} (checkpoint {record.checkpoint},"
        f" iteration {record.iteration}) -> {new.model_prefix}; set deepracer.modelPrefix to"
        f" {new.model_prefix} in Pulumi.{stack}.yaml for the next commands"
    )


def _copy_from(
    stack: str, directory: Path, outputs_file: Path | None, target: RunTarget, prefix: str
) -> None:
    """The interrupted run of another stack's bucket copied into `target`'s, where it is not
    the same bucket."""
    _, source = _context(stack, directory, outputs_file, None)
    if source.bucket_url == target.bucket_url:
        return
    copied = checkpoint_copy.copy_interrupted(
        (source.bucket_url, source.storage_env), (target.bucket_url, target.storage_env), prefix
    )
    _say(
        f"copied {prefix} (checkpoint {copied.checkpoint}) from {source.bucket_url} into"
        f" {target.bucket_url}"
    )


COMMANDS = {"resume": resume}
