"""DonkeyCar runs as the trainer leaves them (training/donkeycar/train.py).

Under the runs folder each run is `<run id>/` holding the model, `pilot.tflite`, `loss.png`,
`history.json` (Keras' loss per epoch), `run-manifest.json`, then `COMPLETE` once every file
is verified; a failed run leaves `FAILED.txt` with the reason, a running one neither yet.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from training import storage
from training.deepracer import bucket_io
from training.donkeycar.train import COMPLETE, FAILED, LATEST, RUN_MANIFEST

HISTORY = "history.json"
MOVIE_SUFFIXES = (".mp4", ".webm")
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # what a URL may name: no "..", no "/"


@dataclass
class DonkeyRun:
    run_id: str
    files: list[str]  # relative to the run, sidecars left out
    manifest: dict[str, Any] = field(default_factory=dict)
    failure: str | None = None

    @property
    def status(self) -> str:
        if COMPLETE in self.files:
            return "COMPLETE"
        return "FAILED" if FAILED in self.files else "running"

    @property
    def records(self) -> int | None:
        tubs = self.manifest.get("records", {}).get("tubs")
        return sum(tubs.values()) if isinstance(tubs, dict) else None

    @property
    def archive_tubs(self) -> int | None:
        archive = self.manifest.get("archive")
        return len(archive.get("tubs", {})) if isinstance(archive, dict) else None

    @property
    def donkeycar(self) -> str | None:
        return self.manifest.get("versions", {}).get("donkeycar")

    @property
    def gpus(self) -> str | None:
        return self.manifest.get("versions", {}).get("gpus")

    @property
    def seconds(self) -> dict[str, float]:
        return {k: v for k, v in self.manifest.get("seconds", {}).items() if v is not None}

    @property
    def movies(self) -> list[str]:
        return [f for f in self.files if f.lower().endswith(MOVIE_SUFFIXES)]

    @property
    def downloads(self) -> list[str]:
        """The model files a user takes to the car (the manifest's verified outputs)."""
        return sorted(self.manifest.get("outputs", {})) or [
            f for f in self.files if f.startswith("pilot")
        ]


def _read(url: str) -> bytes | None:
    return bucket_io.read_object(url)


def _json(url: str) -> dict[str, Any]:
    data = _read(url)
    if data is None:
        return {}
    try:
        value = json.loads(data)
    except ValueError:
        return {"unreadable": f"{url} is not JSON"}
    return value if isinstance(value, dict) else {}


def _group(runs_url: str) -> dict[str, list[str]]:
    """Each run's files from one listing (a folder nobody trained into yet has none)."""
    if "://" not in runs_url and not storage.exists(runs_url):
        return {}
    runs: dict[str, list[str]] = {}
    for url in storage.list_files(runs_url):
        relative = url[len(runs_url.rstrip("/")) + 1 :]
        run_id, sep, rest = relative.partition("/")
        if sep and not rest.endswith(storage.SIDECAR_SUFFIX):
            runs.setdefault(run_id, []).append(rest)
    return runs


def list_runs(runs_url: str) -> list[DonkeyRun]:
    """Every run, newest first, each with its manifest when it has one."""
    grouped = _group(runs_url)
    runs = [DonkeyRun(run_id, sorted(files)) for run_id, files in grouped.items()]
    with ThreadPoolExecutor(max_workers=8) as pool:
        manifests = pool.map(
            storage.in_this_block(
                lambda r: (
                    _json(storage.join(runs_url, r.run_id, RUN_MANIFEST))
                    if RUN_MANIFEST in r.files
                    else {}
                )
            ),
            runs,
        )
        for run, manifest in zip(runs, manifests, strict=True):
            run.manifest = manifest
    return sorted(runs, key=lambda r: r.run_id, reverse=True)


def read_run(runs_url: str, run_id: str) -> DonkeyRun | None:
    """One run with its manifest and failure reason; None when there is no such run."""
    if not RUN_ID.fullmatch(run_id):
        return None
    run_url = storage.join(runs_url, run_id)
    files = _group(runs_url).get(run_id)
    if not files:
        return None
    run = DonkeyRun(run_id, sorted(files))
    if RUN_MANIFEST in files:
        run.manifest = _json(storage.join(run_url, RUN_MANIFEST))
    if FAILED in files:
        run.failure = (_read(storage.join(run_url, FAILED)) or b"").decode("utf-8", "replace")
    return run


def history(runs_url: str, run_id: str) -> dict[str, list[float]]:
    """Loss per epoch (`loss`, `val_loss`), {} until the trainer uploaded it."""
    found = _json(storage.join(runs_url, run_id, HISTORY))
    return {k: v for k, v in found.items() if isinstance(v, list)}


def latest(runs_url: str) -> str | None:
    return _json(storage.join(runs_url, LATEST)).get("run_id")
