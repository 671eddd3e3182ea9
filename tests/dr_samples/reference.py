"""What deepracer-utils itself computes on sample runs; runs in its own venv, prints JSON.

Usage: reference.py RUN... where RUN is a run folder or a .tar.gz log download (unpacked into a
temporary folder first, as a user would). Not collected by pytest: it imports deepracer-utils,
which only the reference environment has (tests/dr_samples/__init__.py makes it).
"""

import contextlib
import glob
import io
import json
import os
import sys
import tarfile
import tempfile

from deepracer.logs import DeepRacerLog, TrainingMetrics


def _counts(series):
    return {str(key): int(value) for key, value in series.items()}


def simtrace(folder):
    log = DeepRacerLog(folder)
    out = {"folder_type": log.fh.type.name}
    try:
        log.load_training_trace(ignore_metadata=True)
    except Exception:  # deepracer-utils raises a bare Exception when a folder has none
        out["training"] = None
    else:
        df = log.dataframe()
        out["training"] = {
            "iterations": sorted(int(i) for i in df["iteration"].unique()),
            "episodes": {
                str(w): _counts(g.groupby("iteration")["episode"].nunique())
                for w, g in df.groupby("worker")
            },
            "best_progress": {
                str(i): float(p) for i, p in df.groupby("iteration")["progress"].max().items()
            },
        }
    log = DeepRacerLog(folder)
    try:
        log.load_evaluation_trace(ignore_metadata=True)
    except Exception:  # likewise for evaluation traces
        out["evaluation"] = None
    else:
        df = log.dataframe()
        out["evaluation"] = {
            str(s): {
                "episodes": int(g["episode"].nunique()),
                "best_progress": float(g["progress"].max()),
            }
            for s, g in df.groupby("stream")
        }
    return out


def metrics(folder):
    files = sorted(glob.glob(os.path.join(folder, "metrics", "TrainingMetrics*.json")))
    files = files or sorted(glob.glob(os.path.join(folder, "metrics", "training", "*.json")))
    if not files:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        tm = TrainingMetrics(None, fname=files[0])
        for worker, name in enumerate(files[1:], start=1):
            tm.addRound(None, fname=name, training_round=1, worker=worker)
    df = tm.metrics
    training = df[df["phase"] == "training"]
    summary = tm.getSummary(method="mean")
    return {
        "iterations": sorted(int(i) for i in df["iteration"].unique()),
        "episodes": {
            str(w): _counts(g.groupby("iteration").size()) for w, g in training.groupby("worker")
        },
        "train_progress": {
            str(i): float(r["train_completion"]) for (_, i), r in summary.iterrows()
        },
        "eval_progress": {
            str(i): float(r["eval_completion"])
            for (_, i), r in summary.iterrows()
            if r["eval_episodes"] > 0
        },
    }


if __name__ == "__main__":
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for run in sys.argv[1:]:
            folder = run
            if run.endswith(".tar.gz"):
                with tarfile.open(run) as archive:
                    archive.extractall(scratch, filter="data")
                    top = archive.getnames()[0].split("/")[0]
                folder = os.path.join(scratch, top)
            results[run] = simtrace(folder) | {"metrics": metrics(folder)}
    json.dump(results, sys.stdout)
