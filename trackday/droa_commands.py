"""`trackday dr droa list-models | get-model | import-model | download-logs | delete-model`:
DRfC 6.x's `droa-*` commands, against the user's DeepRacer on AWS deployment (trackday/droa.py).

The site and user come from `--url`/`--username`, else the stack's `deepracer.upload.droaUrl`
and `droaUsername`; the password from TRACKDAY_DROA_PASSWORD or a prompt, never from a file.
`import-model` exports one checkpoint of the stack's run in the layout DRoA imports
(training/deepracer/model_upload.py) to the deployment's upload bucket, then asks DRoA to
import it.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.table import Table

from trackday import droa
from trackday.dr_commands import (
    DIRECTORY,
    OUTPUTS,
    _context,
    _fail,
    _say,
    load_settings,
    run_objects,
)
from trackday.dr_run_files import copy_model
from training import storage

app = typer.Typer(
    help="DeepRacer on AWS: list, inspect, import, download and delete models "
    "(DRfC's droa-* commands).",
    no_args_is_help=True,
)
STACK = typer.Option(
    None, "--stack", "-s", help="Read the site and user from the stack's deepracer.upload section."
)
URL = typer.Option(None, "--url", help="The DeepRacer on AWS site (its env.js says the rest).")
USER = typer.Option(None, "--username", "-u", help="Who signs in (an email address).")
AS_JSON = typer.Option(False, "--json", help="Print JSON.")
ASSET_TYPES = ("TRAINING_LOGS", "EVALUATION_LOGS", "PHYSICAL_CAR_MODEL", "VIRTUAL_MODEL", "VIDEOS")


def _session(
    stack: str | None, directory: Path | None, url: str | None, username: str | None
) -> droa.DroaApi:
    """The deployment's API, signed in with cached credentials or the user's password."""
    if stack and not (url and username):
        upload = load_settings(stack, directory).upload
        url, username = url or upload.droa_url, username or upload.droa_username
    if not url or not username:
        raise _fail(
            "which DeepRacer on AWS? pass --url and --username, or set "
            "deepracer.upload.droaUrl and droaUsername and pass --stack"
        )
    try:
        config = droa.fetch_config(url)
        cache = droa.cache_file(config, username)
        credentials = droa.cached(cache)
        if credentials is None:
            password = os.environ.get(droa.PASSWORD_ENV) or typer.prompt(
                f"DeepRacer on AWS password for {username}", hide_input=True
            )
            credentials = droa.login(config, username, password)
            droa.store(cache, credentials)
    except droa.DroaError as error:
        raise _fail(str(error)) from None
    return droa.DroaApi(config, credentials)


def _calling(action):
    try:
        return action()
    except droa.DroaError as error:
        raise _fail(str(error)) from None


@app.command("list-models")
def list_models(
    stack: str = STACK,
    directory: Path = DIRECTORY,
    url: str = URL,
    username: str = USER,
    as_json: bool = AS_JSON,
) -> None:
    """The models in the deployment, newest first."""
    api = _session(stack, directory, url, username)
    models = sorted(_calling(api.list_models), key=lambda m: m.get("createdAt") or "", reverse=True)
    if as_json:
        typer.echo(json.dumps(models, indent=2, default=str))
        return
    table = Table(title=f"{len(models)} models on {api.config.site_url}")
    for column in ("model id", "name", "status", "training", "created"):
        table.add_column(column, overflow="fold")
    for model in models:
        table.add_row(
            model.get("modelId", ""),
            model.get("name", ""),
            model.get("status", ""),
            model.get("trainingStatus", ""),
            (model.get("createdAt") or "")[:19].replace("T", " "),
        )
    Console(width=140).print(table)


@app.command("get-model")
def get_model(
    model_id: str = typer.Argument(..., help="The model's id."),
    stack: str = STACK,
    directory: Path = DIRECTORY,
    url: str = URL,
    username: str = USER,
    as_json: bool = AS_JSON,
) -> None:
    """One model: status, car, track, training and what its import said."""
    api = _session(stack, directory, url, username)
    model = _calling(lambda: api.get_model(model_id))
    if as_json:
        typer.echo(json.dumps(model, indent=2, default=str))
        return
    track = (model.get("trainingConfig") or {}).get("trackConfig") or {}
    for label, value in (
        ("model id", model.get("modelId")),
        ("name", model.get("name")),
        ("status", model.get("status")),
        ("training", model.get("trainingStatus")),
        ("track", track.get("trackId")),
        ("direction", track.get("trackDirection")),
        ("import error", model.get("importErrorMessage")),
    ):
        if value:
            _say(f"{label:<13} {value}")


@app.command("delete-model")
def delete_model(
    model_id: str = typer.Argument(..., help="The model's id."),
    stack: str = STACK,
    directory: Path = DIRECTORY,
    url: str = URL,
    username: str = USER,
    yes: bool = typer.Option(False, "--yes", help="Do not ask to type the name."),
) -> None:
    """Delete a READY or ERROR model (asks for its name first, as DRfC does)."""
    api = _session(stack, directory, url, username)
    if not yes:
        model = _calling(lambda: api.get_model(model_id))
        name = model.get("name", model_id)
        if typer.prompt(f"type the model name ({name}) to delete it") != name:
            raise _fail("the name did not match: nothing deleted")
    deleted = _calling(lambda: api.delete_model(model_id))
    _say(f"deleted {deleted.get('name', model_id)} ({model_id})")


@app.command("download-logs")
def download_logs(
    model_id: str = typer.Argument(..., help="The model's id."),
    stack: str = STACK,
    directory: Path = DIRECTORY,
    url: str = URL,
    username: str = USER,
    asset_type: str = typer.Option("TRAINING_LOGS", "--asset-type", help=" | ".join(ASSET_TYPES)),
    evaluation_id: str = typer.Option(None, "--evaluation-id", help="For EVALUATION_LOGS."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Where to save it (default: <model id>-<asset>.tar.gz)."
    ),
) -> None:
    """Download a model's training or evaluation logs (or another of its assets)."""
    if asset_type not in ASSET_TYPES:
        raise _fail(f"asset type {asset_type!r}: use one of {', '.join(ASSET_TYPES)}")
    if asset_type == "EVALUATION_LOGS" and not evaluation_id:
        raise _fail("EVALUATION_LOGS needs --evaluation-id")
    api = _session(stack, directory, url, username)
    address = _calling(lambda: api.asset_url(model_id, asset_type, evaluation_id))
    target = out or Path(f"{model_id}-{asset_type.lower()}.tar.gz")
    _calling(lambda: droa.download(address, target))
    _say(f"downloaded {asset_type} of {model_id} to {target}")


@app.command("import-model")
def import_model(
    stack: str = typer.Option(..., "--stack", "-s", help="The stack whose run to import."),
    directory: Path = DIRECTORY,
    outputs_file: Path = OUTPUTS,
    url: str = URL,
    username: str = USER,
    name: str = typer.Option(
        None, "--name", help="The model's name in DRoA (default: the model prefix)."
    ),
    description: str = typer.Option(None, "--description"),
    best: bool = typer.Option(False, "--best", "-b", help="The best checkpoint, not the last."),
    checkpoint: int = typer.Option(None, "--checkpoint", "-c", min=0, help="A checkpoint number."),
) -> None:
    """Import one checkpoint of the stack's run into DeepRacer on AWS (droa-import-model)."""
    from training.deepracer.model_upload import ModelUploadError, export_params, plan_upload

    if best and checkpoint is not None:
        raise _fail("--best or --checkpoint, not both")
    settings, target = _context(stack, directory, outputs_file, None)
    if name is not None and droa.model_name(name) != name:
        raise _fail(f"--name {name!r}: DeepRacer on AWS takes letters, digits and '-' only")
    name = _calling(lambda: droa.model_name(name or settings.model_prefix))
    api = _session(stack, directory, url, username)
    prefix = f"uploads/models/{uuid.uuid4()}"  # as DRfC's import_model.py names it
    choice = str(checkpoint) if checkpoint is not None else ("best" if best else "last")
    try:
        layout, keys, records = run_objects(settings, target)
        params = export_params(
            settings, api.config.upload_bucket, api.config.region, prefix, droa=True
        )
        plan = plan_upload(
            layout, keys, records, choice, prefix, droa_params_yaml(params), int(time.time())
        )
        upload_env = api.credentials.storage_env | {"AWS_DEFAULT_REGION": api.config.region}
        written = copy_model(
            target.bucket_url,
            f"s3://{api.config.upload_bucket}",
            prefix,
            plan,
            target.storage_env,
            upload_env,
        )
    except (ModelUploadError, storage.StorageError) as error:
        raise _fail(str(error)) from None
    _say(
        f"checkpoint {plan.checkpoint}: {len(written)} objects uploaded to "
        f"s3://{api.config.upload_bucket}/{prefix}"
    )
    model_id = _calling(lambda: api.import_model(prefix, name, description))
    _say(
        f"importing as {name}: model id {model_id} (`trackday dr droa get-model {model_id}` "
        "follows it)"
    )


def droa_params_yaml(params: dict) -> str:
    """training_params.yaml as DRoA reads it: plain YAML, so TRACK_DIRECTION_CLOCKWISE is a
    boolean (DRoA compares it with `=== true`), as DRfC's import_model.py writes it."""
    return yaml.safe_dump(params, default_flow_style=False, explicit_start=True)
