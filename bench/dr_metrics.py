"""`trackday dr metrics --json` against deepracer-utils loading the same run.

Goal (issue 18): on the largest sample run of deepracer-utils' sdist, trackday's metrics take at
most 1.0x the time deepracer-utils takes to load the same files (its TrainingMetrics for every
worker's metrics file, DeepRacerLog's training and evaluation traces), measured in the same run.
Two figures, alternating the two sides, best of --repeat each:

    command   the whole command as a user runs it (a fresh process: imports, reading, output),
              against a fresh Python process that imports deepracer-utils and loads the files;
    loading   inside those processes, after the imports: load_run() + run_json() against the
              deepracer-utils calls.

    PYTHONPATH=. .venv/bin/python bench/dr_metrics.py [--repeat 5]

The first run downloads the sdist and makes deepracer-utils' venv (tests/dr_samples).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from tests import dr_samples

REPO = Path(__file__).resolve().parents[1]
OURS = """
import json, sys, time
t0 = time.perf_counter()
from training.deepracer.metrics import load_run
from training.deepracer.metrics_json import run_json
t1 = time.perf_counter()
text = json.dumps(run_json(load_run(sys.argv[1])))
print(time.perf_counter() - t1)
"""
THEIRS = """
import contextlib, glob, io, os, sys, time
t0 = time.perf_counter()
from deepracer.logs import DeepRacerLog, TrainingMetrics
t1 = time.perf_counter()
run = sys.argv[1]
files = sorted(glob.glob(os.path.join(run, "metrics", "TrainingMetrics*.json")))
files = files or sorted(glob.glob(os.path.join(run, "metrics", "training", "*.json")))
with contextlib.redirect_stdout(io.StringIO()):
    metrics = TrainingMetrics(None, fname=files[0])
    for worker, name in enumerate(files[1:], start=1):
        metrics.addRound(None, fname=name, training_round=1, worker=worker)
    DeepRacerLog(run).load_training_trace(ignore_metadata=True)
    DeepRacerLog(run).load_evaluation_trace(ignore_metadata=True)
print(time.perf_counter() - t1)
"""


def run_bytes(run: Path) -> int:
    """What trackday reads of a run: metrics JSON and training traces."""
    return sum(
        p.stat().st_size
        for p in run.rglob("*")
        if p.is_file()
        and (
            (p.suffix == ".json" and "metrics" in p.parts)
            or (p.suffix == ".csv" and any("training" in part for part in p.parts))
        )
    )


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds of the whole process, the loading time it printed last)."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=True)
    return time.perf_counter() - start, float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    runs = [p for p in (dr_samples.logs_dir() / name for name in dr_samples.LOG_RUNS) if p.is_dir()]
    run = max(runs, key=run_bytes)
    reference = str(dr_samples.reference_python())
    ours_cli = [
        str(REPO / ".venv" / "bin" / "python"),
        "-m",
        "trackday",
        "dr",
        "metrics",
        str(run),
        "--json",
    ]
    sides = {
        "trackday": ([sys.executable, "-c", OURS, str(run)], ours_cli),
        "deepracer-utils": ([reference, "-c", THEIRS, str(run)], None),
    }
    best: dict[str, list[float]] = {name: [float("inf"), float("inf")] for name in sides}
    for _ in range(args.repeat):
        for name, (script, cli) in sides.items():
            wall, loading = timed(script)
            if cli is not None:  # the command itself, as a user runs it
                start = time.perf_counter()
                done = subprocess.run(cli, capture_output=True, text=True, cwd=REPO, check=True)
                wall = time.perf_counter() - start
                json.loads(done.stdout)
            best[name] = [min(best[name][0], wall), min(best[name][1], loading)]
    print(f"run: {run.name} ({run_bytes(run) / 1e6:.1f} MB read), best of {args.repeat}")
    for index, label in enumerate(("command", "loading")):
        ours, theirs = best["trackday"][index], best["deepracer-utils"][index]
        print(
            f"{label:8} trackday {ours:6.3f} s   deepracer-utils {theirs:6.3f} s   "
            f"ratio {ours / theirs:.2f}  (goal <= 1.0)"
        )


if __name__ == "__main__":
    main()
