"""Where DonkeyCar runs live in a stack's bucket, uploading their data and fetching results.

Layout under the bucket: `tubs/<sha256 prefix>-<archive name>` (content-addressed, so an
archive already there is not sent again) and `runs/donkeycar/<run id>/` (what the trainer
writes: model, `pilot.tflite`, `loss.png`, `history.json`, `run-manifest.json`, and
`COMPLETE` last). `runs/` is the prefix the bucket's lifecycle rule moves to a colder class.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from training import storage
from training.donkeycar.train import COMPLETE, FAILED, LATEST, RUN_MANIFEST

TUBS = "tubs"
DONKEYCAR_RUNS = "runs/donkeycar"


class RunError(Exception):
    """A run that cannot be fetched; the message says why."""


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def runs_url(bucket_url: str) -> str:
    return storage.join(bucket_url, DONKEYCAR_RUNS)


def trainer_args(
    data_url: str, output_url: str, run_id: str, model_type: str, overrides: dict[str, Any]
) -> list[str]:
    """The trainer's command line (training/donkeycar/train.py) for one run, wherever it runs.

    It writes under `<output_url>/<run_id>/`; overrides go as Python literals, as it reads them.
    """
    args = ["--data", data_url, "--output", output_url, "--run-id", run_id]
    args += ["--model-type", model_type]
    for key, value in sorted(overrides.items()):
        args += ["--set", f"{key}={value!r}"]
    return args


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
    """A run's URL from its id, `latest`, or a URL given as is."""
    if "://" in run:
        return run.rstrip("/")
    runs = runs_url(bucket_url)
    if run == "latest":
        latest = json.loads(storage.read_text(storage.join(runs, LATEST)))
        return latest["url"]
    return storage.join(runs, run)


def fetch_run(
    run_url: str, dest: Path, progress: storage.Progress | None = None
) -> list[Path]:
    """Download a complete run's results into `dest`, each checked against the run manifest."""
    if not storage.exists(storage.join(run_url, COMPLETE)):
        failed = storage.join(run_url, FAILED)
        reason = storage.read_text(failed).strip() if storage.exists(failed) else "no result yet"
        raise RunError(f"{run_url} is not a complete run ({reason})")
    dest.mkdir(parents=True, exist_ok=True)
    manifest_path = dest / RUN_MANIFEST
    digest = storage.download(storage.join(run_url, RUN_MANIFEST), manifest_path, progress=False)
    # COMPLETE holds the manifest's digest: the manifest is the one the finished run wrote.
    if digest != storage.read_text(storage.join(run_url, COMPLETE)).strip():
        raise RunError(f"{run_url}: {RUN_MANIFEST} does not match the checksum in {COMPLETE}")
    outputs: dict[str, str] = json.loads(manifest_path.read_text())["outputs"]
    fetched = [manifest_path]
    for rel, expected in sorted(outputs.items()):
        target = dest / rel
        if storage.download(storage.join(run_url, rel), target, progress=progress) != expected:
            raise RunError(f"{run_url}/{rel}: checksum differs from the run manifest")
        fetched.append(target)
    return fetched
