"""The files of a DeepRacer run as users have them, whichever tool wrote the folder.

Three layouts carry the same simulator files (checked against deepracer-utils 1.5.6's sample
runs and its FileHandler, which knows the same three):

DRfC model prefix (a bucket, or a local copy)
    metrics/TrainingMetrics.json, metrics/TrainingMetrics_<n>.json (worker n > 0),
    metrics/EvaluationMetrics-<stamp>.json, training-simtrace/<i>-iteration.csv (one worker) or
    <n>/training-simtrace/<i>-iteration.csv (worker n of several), ip/hyperparameters.json,
    model/deepracer_checkpoints.json.
The retired console's log download
    metrics/training/training-<stamp>-<id>.json, metrics/evaluation/evaluation-<stamp>-<id>.json,
    sim-trace/training/training-simtrace/<i>-iteration.csv, logs/...
DeepRacer on AWS (DRoA) log download, a .tar.gz or its unpacked folder
    metrics/training/<iso-time>-<id>.json, metrics/evaluation/<iso-time>-<id>.json,
    sim-trace/training/<iso-time>-<id>/training-simtrace/<i>-iteration.csv, logs/...

deepracer-utils reads the same layouts, but only from a local folder, boto3's S3 or a tar file,
and its loaders print to stdout; trackday's runs also live in GCS and Azure buckets (through
training/storage/), so the listing and reading are done here. An archive is read in memory,
member by member, so nothing in it is ever written to disk.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from training import storage
from training.deepracer import bucket_io

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
_TRAINING_METRICS = (
    re.compile(r"^metrics/TrainingMetrics(?:_(\d+))?\.json$"),
    re.compile(r"^metrics/training/()[^/]+\.json$"),
)
_EVALUATION_METRICS = (
    re.compile(r"^metrics/EvaluationMetrics-([^/]+)\.json$"),
    re.compile(r"^metrics/evaluation/(?:evaluation-)?([^/]+)\.json$"),
)
_TRAINING_SIMTRACE = (
    re.compile(r"^(?:(\d+)/)?training-simtrace/(\d+)-iteration\.csv$"),
    re.compile(
        r"^sim-trace/training/()(?:[^/]+/)?training-simtrace/"
        r"(\d+)-iteration\.csv$"
    ),
)
HYPERPARAMETERS = "ip/hyperparameters.json"
CHECKPOINTS = "model/deepracer_checkpoints.json"


class RunFilesError(ValueError):
    """The source holds no run files, or cannot be read; says what was expected."""


@dataclass
class RunFiles:
    """Relative keys of a run's files by kind, and how to read one."""

    source: str
    read: Callable[[str], bytes]
    parallel: bool = False  # a remote bucket: read several objects at once
    layout: str = "drfc"  # "drfc", "console" or "droa"
    training_metrics: dict[int, str] = field(default_factory=dict)  # worker -> key
    evaluation_metrics: dict[str, str] = field(default_factory=dict)  # evaluation id -> key
    training_simtrace: dict[tuple[int, int], str] = field(default_factory=dict)  # (worker, it.)
    extras: set[str] = field(default_factory=set)  # hyperparameters, checkpoints when present

    def read_many(self, keys: list[str]) -> list[bytes]:
        if not self.parallel or len(keys) < 2:
            return [self.read(key) for key in keys]
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(storage.in_this_block(self.read), keys))


def _classify(keys: list[str], found: RunFiles) -> RunFiles:
    for key in keys:
        for pattern in _TRAINING_METRICS:
            if match := pattern.match(key):
                found.training_metrics[int(match.group(1) or 0)] = key
        for pattern in _EVALUATION_METRICS:
            if match := pattern.match(key):
                found.evaluation_metrics[match.group(1)] = key
        for pattern in _TRAINING_SIMTRACE:
            if match := pattern.match(key):
                found.training_simtrace[int(match.group(1) or 0), int(match.group(2))] = key
        if key in (HYPERPARAMETERS, CHECKPOINTS):
            found.extras.add(key)
    if not found.training_metrics and not found.evaluation_metrics:
        raise RunFilesError(
            f"{found.source}: no DeepRacer metrics found; give a run's model prefix "
            "(s3://BUCKET/MODEL-PREFIX holding metrics/TrainingMetrics.json), or a log "
            "download from DeepRacer on AWS or the console (a .tar.gz, or its folder holding "
            "metrics/training/ and sim-trace/)"
        )
    if any(key.startswith("metrics/TrainingMetrics") for key in keys):
        found.layout = "drfc"
    elif any(key.startswith("sim-trace/training/training-simtrace/") for key in keys):
        found.layout = "console"
    elif not any(key.startswith("metrics/EvaluationMetrics-") for key in keys):
        found.layout = "droa"
    return found


def _archive(source: str) -> RunFiles:
    """A log download kept as an archive; the one top-level folder it wraps is stripped."""
    try:
        data = (
            bucket_io.read_object(source)
            if "://" in source
            else Path(source).expanduser().read_bytes()
        )
        if data is None:
            raise FileNotFoundError("no such object")
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as opened:
            members = {
                m.name.removeprefix("./"): opened.extractfile(m).read()
                for m in opened.getmembers()
                if m.isfile()
            }
    except (OSError, tarfile.TarError) as error:
        raise RunFilesError(f"{source}: not a readable .tar.gz archive ({error})") from None
    tops = {name.split("/", 1)[0] for name in members if "/" in name}
    strip = f"{tops.pop()}/" if len(tops) == 1 and all("/" in n for n in members) else ""
    files = {name.removeprefix(strip): content for name, content in members.items()}
    return _classify(sorted(files), RunFiles(source, files.__getitem__))


def open_run(source: str) -> RunFiles:
    """List the run files under a folder or bucket URL, or in a .tar.gz log download."""
    source = source.rstrip("/") or source
    if "://" not in source:  # storage lists a plain path's files by their absolute paths
        source = os.path.abspath(os.path.expanduser(source))
    if source.endswith(ARCHIVE_SUFFIXES):
        return _archive(source)
    keys = [
        url[len(source) + 1 :] for url in storage.list_files(source) if url.startswith(source + "/")
    ]

    def read(key: str) -> bytes:
        content = bucket_io.read_object(storage.join(source, key))
        if content is None:
            raise RunFilesError(f"{source}/{key}: vanished while reading the run")
        return content

    remote = "://" in source and not source.startswith("file://")
    return _classify(keys, RunFiles(source, read, parallel=remote))
