"""Where DonkeyCar runs live in a stack's bucket, uploading their data and fetching results.

Layout under the bucket: `tubs/<sha256 prefix>-<archive name>` (content-addressed, so an
archive already there is not sent again) and `runs/donkeycar/<run id>/` (what the trainer
writes: model, `pilot.tflite`, `loss.png`, `history.json`, `run-manifest.json`, and
`COMPLETE` last; `transfer/`, the model a `submit --transfer` run starts from, is put there
before the job). `runs/` is the prefix the bucket's lifecycle rule moves to a colder class.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from trackday.errors import TrackdayError
from training import storage
from training.donkeycar.train import COMPLETE, FAILED, INTERRUPTED, LATEST, RUN_MANIFEST

TUBS = "tubs"
DONKEYCAR_RUNS = "runs/donkeycar"


class RunError(TrackdayError):
    """A run that cannot be fetched; the message says why."""


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def runs_url(bucket_url: str) -> str:
    return storage.join(bucket_url, DONKEYCAR_RUNS)


def trainer_args(
    data_url: str,
    output_url: str,
    run_id: str,
    model_type: str | None,
    overrides: dict[str, Any],
) -> list[str]:
    """The trainer's command line (training/donkeycar/train.py) for one run, wherever it runs.

    It writes under `<output_url>/<run_id>/`; overrides go as Python literals, as it reads them.
    Without a model type the trainer uses the car config's DEFAULT_MODEL_TYPE.
    """
    args = ["--data", data_url, "--output", output_url, "--run-id", run_id]
    args += ["--model-type", model_type] if model_type else []
    for key, value in sorted(overrides.items()):
        args += ["--set", f"{key}={value!r}"]
    return args


@contextmanager
def failure_recorded(run_url: str) -> Iterator[None]:
    """Starting a job whose inputs are in its run folder already (`submit --transfer`): if it
    fails before the trainer has finished, failed or been interrupted, `FAILED.txt` says why,
    as the trainer's own would, so the folder does not pass for a running run. A run folder
    that holds nothing yet is left absent. A run the trainer marked INTERRUPTED (a spot
    notice; its node may run it again) is left as the trainer left it."""
    try:
        yield
    except BaseException as exc:
        done = [storage.join(run_url, name) for name in (COMPLETE, FAILED, INTERRUPTED)]
        with suppress(storage.StorageError):  # the original error matters more
            if storage.list_files(run_url) and not any(map(storage.exists, done)):
                reason = str(exc) or "interrupted"
                storage.write_text(done[1], f"{type(exc).__name__}: {reason}\n")
        raise


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def ensure_uploaded(
    archive: Path, bucket_url: str, progress: storage.Progress | None = None
) -> tuple[str, bool]:
    """The archive's URL in the bucket, uploading it unless it is there already.

    Returns (url, uploaded). The object name carries the archive's checksum, and only a
    verified upload (one with its checksum sidecar) counts as there.
    """
    digest = sha256_of(archive)
    url = storage.join(bucket_url, TUBS, f"{digest[:16]}-{archive.name}")
    if storage.checksum(url) == digest:
        return url, False
    storage.upload(archive, url, progress=progress)
    return url, True


def resolve_run(bucket_url: str, run: str) -> str:
    """A run's URL from its id, `latest`, or a URL given as is (the operator's own choice).

    An id must be one plain name, and `latest.json` (written by whatever can write the
    bucket) must point at a run directly under this bucket's runs prefix: anything else
    would let the bucket choose where fetch reads from and, through the run id, where it
    writes.
    """
    if "://" in run:
        return run.rstrip("/")
    runs = runs_url(bucket_url)
    if run == "latest":
        return _latest_run(runs)
    if not _RUN_ID.fullmatch(run):
        raise RunError(f"{run!r} is not a run id (letters, digits, '.', '_', '-'); give its URL")
    return storage.join(runs, run)


_RUN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_MANIFEST_BYTES = 16 << 20  # a real one is a few kB


def _latest_run(runs: str) -> str:
    """The run `latest.json` names, refused unless it is a run under `runs`."""
    where = storage.join(runs, LATEST)
    hint = "pass the run id instead (`trackday donkey fetch RUN_ID`)"
    try:
        latest = json.loads(storage.read_text(where))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise RunError(f"{where} is truncated or not JSON ({exc}); {hint}") from None
    url = latest.get("url") if isinstance(latest, dict) else None
    if not isinstance(url, str):
        raise RunError(f'{where} holds no run URL (want {{"url": ...}}); {hint}')
    run_id = url.rstrip("/").removeprefix(runs.rstrip("/") + "/")
    if run_id == url.rstrip("/") or not _RUN_ID.fullmatch(run_id):
        raise RunError(f"{where} points at {url!r}, which is not a run under {runs}; {hint}")
    return storage.join(runs, run_id)


def output_path(name: object) -> PurePosixPath:
    """A run manifest's output name as a relative path that stays inside the run folder."""
    parts = name.split("/") if isinstance(name, str) else [""]
    if name == RUN_MANIFEST or any(
        part in ("", ".", "..") or "\\" in part or "\0" in part for part in parts
    ):
        raise RunError(f"the run manifest lists an unsafe output name {name!r}; refusing the run")
    return PurePosixPath(*parts)


def complete_manifest(run_url: str, manifest_path: Path) -> dict[str, Any]:
    """A complete run's manifest, downloaded to `manifest_path` and checked against the digest
    in `COMPLETE`: it is the one the finished run wrote. Refuses a run that is not complete."""
    if not storage.exists(storage.join(run_url, COMPLETE)):
        failed = storage.join(run_url, FAILED)
        reason = storage.read_text(failed).strip() if storage.exists(failed) else "no result yet"
        raise RunError(f"{run_url} is not a complete run ({reason})")
    digest = storage.download(storage.join(run_url, RUN_MANIFEST), manifest_path, progress=False)
    if digest != storage.read_text(storage.join(run_url, COMPLETE)).strip():
        raise RunError(f"{run_url}: {RUN_MANIFEST} does not match the checksum in {COMPLETE}")
    return read_manifest(manifest_path, run_url)


def read_manifest(manifest_path: Path, run_url: str) -> dict[str, Any]:
    """A run manifest read from a file, refused unless it is a bounded JSON object."""
    if manifest_path.stat().st_size > MAX_MANIFEST_BYTES:
        raise RunError(f"{run_url}/{RUN_MANIFEST} is over {MAX_MANIFEST_BYTES} bytes; not a run")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise RunError(f"{run_url}/{RUN_MANIFEST} is not JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise RunError(f"{run_url}/{RUN_MANIFEST} is not a run manifest (not a JSON object)")
    return manifest


def run_outputs(manifest: dict[str, Any], run_url: str) -> dict[PurePosixPath, str]:
    """The manifest's outputs, every name and checksum checked before anything is fetched."""
    outputs = manifest.get("outputs")
    if not isinstance(outputs, dict):
        raise RunError(f"{run_url}/{RUN_MANIFEST} has no outputs table")
    checked = {}
    for name, digest in outputs.items():
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise RunError(f"{run_url}/{RUN_MANIFEST}: {name!r} has no sha256 checksum")
        checked[output_path(name)] = digest
    return checked


def fetch_run(run_url: str, dest: Path, progress: storage.Progress | None = None) -> list[Path]:
    """Download a complete run's results into `dest`, each checked against the run manifest.

    Everything goes to a temporary folder beside `dest` first and is moved into place only
    when every file matches: a failed fetch leaves `dest` as it was. Every file is verified,
    sidecar or not: the manifest by the digest in `COMPLETE`, the outputs by the manifest.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dest.name}.", dir=dest.parent) as tmp:
        staging = Path(tmp)
        manifest = complete_manifest(run_url, staging / RUN_MANIFEST)
        outputs = run_outputs(manifest, run_url)
        for rel, expected in sorted(outputs.items()):
            got = storage.download(
                storage.join(run_url, str(rel)), staging / rel, progress=progress
            )
            if got != expected:
                raise RunError(f"{run_url}/{rel}: checksum differs from the run manifest")
        return _move_into_place(staging, [PurePosixPath(RUN_MANIFEST), *sorted(outputs)], dest)


def _move_into_place(staging: Path, names: list[PurePosixPath], dest: Path) -> list[Path]:
    """Move verified files from `staging` into `dest`, refusing any that would leave it."""
    dest.mkdir(exist_ok=True)
    root = dest.resolve()
    targets = []
    for rel in names:
        target = dest / rel
        if not target.resolve().is_relative_to(root):  # a symlinked folder already in dest
            raise RunError(f"{target} leads outside {dest} (a symbolic link?); remove it first")
        targets.append(target)
    for rel, target in zip(names, targets, strict=True):
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / rel, target)
    return targets
