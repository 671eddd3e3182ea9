"""DeepRacer runs in a stack's bucket: one model prefix each, in the layout DRfC and the
simulator write (training/deepracer/layout.py, run_files.py).

The reward chart needs only the metrics files (a few hundred kB for hundreds of iterations);
step-level simtrace (megabytes per iteration) is read one iteration at a time, for the map.
"""

from __future__ import annotations

import csv
import io
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from training import storage
from training.deepracer import bucket_io
from training.deepracer.layout import REWARD_FUNCTION, RunLayout
from training.deepracer.metrics import load_run
from training.deepracer.metrics_json import run_json
from training.deepracer.policy_log import TRAINER_LOGS, PolicyRound, policy_rounds
from training.deepracer.run_files import open_run
from training.deepracer.simtrace import REQUIRED_COLUMNS, SimtraceError
from training.deepracer.track import Track, TrackError

PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # a model prefix a URL may name
MAX_POINTS = 20_000  # steps drawn on the map; more are thinned evenly
COLOURS = {"reward": "reward", "speed": "throttle"}  # the simtrace column behind each choice


def model_prefixes(bucket_url: str) -> list[str]:
    """Top-level folders of the bucket that hold a run's metrics, sorted."""
    fs, root = storage.filesystem(bucket_url)
    folders = [
        entry["name"].rstrip("/").rsplit("/", 1)[-1]
        for entry in fs.ls(root, detail=True)
        if entry["type"] == "directory"
    ]

    def has_metrics(folder: str) -> bool:
        try:
            return bool(fs.ls(f"{root}/{folder}/metrics", detail=False))
        except FileNotFoundError:
            return False

    with ThreadPoolExecutor(max_workers=8) as pool:
        found = list(pool.map(has_metrics, folders))
    return sorted(f for f, ok in zip(folders, found, strict=True) if ok and PREFIX.fullmatch(f))


def _text(url: str) -> str | None:
    data = bucket_io.read_object(url)
    return None if data is None else data.decode("utf-8", "replace")


@dataclass
class RunInfo:
    """What the run page shows besides its charts."""

    prefix: str
    world: str | None
    reward_function: str | None
    videos: list[str]
    iterations_with_trace: list[int]


def run_info(bucket_url: str, prefix: str) -> RunInfo:
    layout = RunLayout(prefix)
    params = _text(storage.join(bucket_url, layout.training_params)) or ""
    try:
        world = (yaml.safe_load(params) or {}).get("WORLD_NAME")
    except (yaml.YAMLError, AttributeError):
        world = None
    reward = _text(storage.join(bucket_url, layout.run_reward_function)) or _text(
        storage.join(bucket_url, layout.custom_file(REWARD_FUNCTION))
    )
    files = open_run(storage.join(bucket_url, prefix))
    fs, root = storage.filesystem(bucket_url)
    videos = sorted(
        p.removeprefix(f"{root}/{prefix}/")
        for p in fs.find(f"{root}/{layout.mp4_prefix}")
        if p.lower().endswith(".mp4")
    )
    return RunInfo(prefix, world, reward, videos, sorted({i for _, i in files.training_simtrace}))


def metrics(bucket_url: str, prefix: str) -> dict:
    """Per-iteration figures, evaluations and checkpoints, without reading any simtrace."""
    return run_json(load_run(storage.join(bucket_url, prefix), simtrace=False))


def policy(bucket_url: str, prefix: str) -> list[PolicyRound] | None:
    """Entropy and the other policy-training figures per iteration, from the trainer's logs
    under `<prefix>/logs/` (the console's folder; `trackday dr stop-training` saves one);
    None when the run has none. Several logs (a run continued) are read in name order."""
    fs, root = storage.filesystem(bucket_url)
    try:
        found = sorted(p for p in fs.find(f"{root}/{prefix}/logs") if p.endswith(TRAINER_LOGS))
    except FileNotFoundError:
        return None
    if not found:
        return None
    lines: list[str] = []
    for path in found:
        lines += fs.cat_file(path).decode("utf-8", "replace").splitlines()
    return policy_rounds(lines)


def _points(text: str, name: str, column: str) -> dict[str, list]:
    rows = csv.reader(io.StringIO(text))
    header = next(rows, [])
    missing = [c for c in (*REQUIRED_COLUMNS, column) if c not in header]
    if missing:
        raise SimtraceError(f"{name}: not a simulator simtrace (no {', '.join(missing)})")
    at = [header.index(c) for c in ("X", "Y", column, "episode")]
    out: dict[str, list] = {"x": [], "y": [], "value": [], "episode": []}
    try:
        for row in rows:
            if row:
                for key, index in zip(out, at, strict=True):
                    out[key].append(float(row[index]))
    except (ValueError, IndexError) as error:
        raise SimtraceError(f"{name}: line {rows.line_num}: {error}") from error
    return out


def simtrace_points(bucket_url: str, prefix: str, iteration: int, colour: str) -> dict:
    """Every worker's car positions in one iteration, with the value to colour them by."""
    files = open_run(storage.join(bucket_url, prefix))
    keys = [key for (_, i), key in sorted(files.training_simtrace.items()) if i == iteration]
    merged: dict[str, list] = {"x": [], "y": [], "value": [], "episode": []}
    for key, content in zip(keys, files.read_many(keys), strict=True):
        for name, values in _points(content.decode("utf-8"), key, COLOURS[colour]).items():
            merged[name] += values
    step = max(1, len(merged["x"]) // MAX_POINTS)
    return {name: values[::step] for name, values in merged.items()} | {
        "steps": len(merged["x"]),
        "files": len(keys),
    }


def track_lines(tracks_dir: Path | None, world: str | None) -> dict | None:
    """Centre line and borders of the run's track, None when its file is not at hand."""
    if tracks_dir is None or not world:
        return None
    try:
        track = Track.load(tracks_dir, world)
    except TrackError:
        return None
    return {
        name: {"x": line[:, 0].tolist(), "y": line[:, 1].tolist()}
        for name, line in (("center", track.center), ("inner", track.inner), ("outer", track.outer))
    }
