"""`trackday donkey submit --transfer MODEL`: the model a cloud run starts from, in the bucket.

As `donkey train --transfer` (and `trackday donkey train --local --transfer`), MODEL is a
model on this machine: a `.h5` or `.keras` file or a `.savedmodel` folder. It is uploaded
into the run's own folder, `runs/donkeycar/<run id>/transfer/<name>`, every file verified by
checksum (training.storage writes its sidecar). To chain runs, MODEL may instead name a model
a finished run wrote in the stack's bucket: `latest`, a run id, or
`runs/donkeycar/<run id>[/<model>]` (also as a full URL); without a model name, the run's
own (its manifest's `model`). The run must be complete and its manifest must list the model
among its verified outputs: names read from the bucket are checked like `fetch` checks them.

The job gets the model's URL (`--transfer`); the trainer downloads and verifies it and hands
it to donkeycar's `train()` (training/donkeycar/transfer.py). `submit --myconfig FILE` goes
the same way, into `runs/donkeycar/<run id>/myconfig.py`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePosixPath

from trackday import runs
from trackday.runs import RunError
from training import storage
from training.donkeycar.train import RUN_MANIFEST
from training.donkeycar.transfer import MODEL_SUFFIXES, check_model_name

TRANSFER = "transfer"
MYCONFIG = "myconfig.py"
IN_BUCKET = "`latest`, a run id or runs/donkeycar/<run id>[/<model>] in the stack's bucket"


def transfer_url(
    given: str, bucket_url: str, run_id: str, progress: storage.Progress | None = None
) -> str:
    """The URL (as this machine names it) of the model run `run_id` starts from."""
    local = Path(given).expanduser()
    if local.exists():
        return upload_model(local, storage.join(runs.runs_url(bucket_url), run_id), progress)
    plain_run_id = "/" not in given and not PurePosixPath(given).suffix
    if "://" in given or given.startswith(f"{runs.DONKEYCAR_RUNS}/") or plain_run_id:
        return bucket_model(given, bucket_url)
    raise RunError(
        f"--transfer {given}: no such file or folder here, and not a model in the bucket; give "
        f"a model here ({', '.join(MODEL_SUFFIXES)}) or {IN_BUCKET}"
    )


def upload_myconfig(
    myconfig: Path, bucket_url: str, run_id: str, progress: storage.Progress | None = None
) -> str:
    """`submit --myconfig FILE`: the file in the run's folder, verified; its URL there."""
    url = storage.join(runs.runs_url(bucket_url), run_id, MYCONFIG)
    storage.upload(myconfig, url, progress=progress)
    return url


def upload_model(model: Path, run_url: str, progress: storage.Progress | None = None) -> str:
    """Upload a model file or folder into the run's folder; its URL there."""
    check_model_name(model.name, str(model))
    url = storage.join(run_url, TRANSFER, model.name)
    if model.is_file():
        storage.upload(model, url, progress=progress)
        return url
    entries = sorted(model.rglob("*"))
    links = [p for p in entries if p.is_symlink() or not (p.is_file() or p.is_dir())]
    files = [p for p in entries if p.is_file()]
    if links:
        raise RunError(
            f"--transfer {model}: {links[0]} is a link or special file; copy the model "
            "without links (cp -rL) and give the copy"
        )
    if not files:
        raise RunError(f"--transfer {model}: the folder is empty; give a saved model")
    for path in files:
        rel = path.relative_to(model).as_posix()
        storage.upload(path, storage.join(url, rel), progress=progress)
    return url


def bucket_model(given: str, bucket_url: str) -> str:
    """The URL of a model a finished run wrote, checked against the run's manifest."""
    runs_prefix = runs.runs_url(bucket_url).rstrip("/") + "/"
    model: str | None = None
    if "://" in given or "/" in given:
        url = given if "://" in given else storage.join(bucket_url, given)
        rest = url.rstrip("/").removeprefix(runs_prefix)
        if rest == url.rstrip("/") or not rest:
            raise RunError(
                f"--transfer {given} is outside the stack's runs ({runs_prefix}); give {IN_BUCKET}"
                " or a model file here"
            )
        run_id, _, model = rest.partition("/")
        run_url = runs.resolve_run(bucket_url, run_id)  # a plain name, or refused
    else:
        run_url = runs.resolve_run(bucket_url, given)  # `latest` is checked to be a run here
    with tempfile.TemporaryDirectory(prefix="trackday-transfer-") as tmp:
        manifest = runs.complete_manifest(run_url, Path(tmp) / RUN_MANIFEST)
    outputs = runs.run_outputs(manifest, run_url)
    name = model or manifest.get("model")
    if not isinstance(name, str):
        raise RunError(f"{run_url}: its manifest names no model; give {run_url}/<model>")
    rel = runs.output_path(name)
    check_model_name(rel.name, given)
    if not any(out == rel or out.is_relative_to(rel) for out in outputs):
        tops = {out.parts[0] for out in outputs}
        models = sorted(t for t in tops if PurePosixPath(t).suffix in MODEL_SUFFIXES)
        raise RunError(f"{run_url} wrote no {name} (its models: {', '.join(models) or 'none'})")
    return storage.join(run_url, str(rel))
