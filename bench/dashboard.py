"""Time to first render of the dashboard's DeepRacer run page, against deepracer-utils.

A run of 200 iterations x 3 workers (30 episodes per iteration, evaluations after each, about
60 MB of simtrace CSV) is written in the simulator's formats into a bucket on a loopback S3
server (`rclone serve s3`) and into a local folder. Two figures, best of --repeat each:

    dashboard        Chromium (Debian's, through Playwright) opens the run page of a running
                     `trackday dashboard`; the clock stops when the reward chart shows all
                     200 iterations. The first, cold, load is reported too.
    deepracer-utils  its own loaders on the local folder, in its own venv (tests/dr_samples):
                     TrainingMetrics for every worker's metrics file and
                     DeepRacerLog.load_training_trace, what a notebook runs before its plots;
                     the whole process (Python, imports, loading) and the loading alone.

The reward chart is drawn from the metrics files alone, so the dashboard reads none of the
simtrace for it (tests/dashboard/test_deepracer_runs.py checks that); the bytes each side
reads are printed with the times.

    PYTHONPATH=. .venv/bin/python bench/dashboard.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from contract.outputs import BucketAccess
from tests import dr_samples
from tests.dashboard.conftest import CHROMIUM, _wait_until_up
from tests.servers import free_port, serve_s3
from tests.training.deepracer.dr_data import episode
from training.deepracer.layout import RunLayout
from training.deepracer.simtrace import SIMTRACE_COLUMNS

REPO = Path(__file__).resolve().parents[1]
ITERATIONS, WORKERS, EPISODES, TRIALS, STEPS = 200, 3, 30, 3, 55
PREFIX = "bench-run"
THEIRS = """
import contextlib, glob, io, os, sys, time
from deepracer.logs import DeepRacerLog, TrainingMetrics
t0 = time.perf_counter()
run = sys.argv[1]
files = sorted(glob.glob(os.path.join(run, "metrics", "TrainingMetrics*.json")))
with contextlib.redirect_stdout(io.StringIO()):
    metrics = TrainingMetrics(None, fname=files[0])
    for worker, name in enumerate(files[1:], start=1):
        metrics.addRound(None, fname=name, training_round=1, worker=worker)
    log = DeepRacerLog(run)
    log.load_training_trace(ignore_metadata=True)
    assert len(log.dataframe()) > 0
print(time.perf_counter() - t0)
"""


def _trace(rng: random.Random, episodes: range) -> str:
    lines = [",".join(SIMTRACE_COLUMNS)]
    for number in episodes:
        for step in range(1, STEPS + 1):
            done = step == STEPS
            values = [
                number,
                step,
                round(rng.uniform(-8, 8), 6),
                round(rng.uniform(-6, 6), 6),
                round(rng.uniform(-180, 180), 4),
                rng.choice((-30.0, 0.0, 30.0)),
                rng.choice((1.0, 2.0, 3.0)),
                rng.randrange(9),
                round(rng.random(), 4),
                done,
                True,
                round(100 * step / STEPS, 4),
                step,
                17.71,
                round(step / 15, 3),
                "off_track" if done else "in_progress",
                0.0,
                0,
                round(1.7e9 + step / 15, 3),
            ]
            lines.append(",".join(str(v) for v in values))
    return "\n".join(lines) + "\n"


def write_run(root: Path) -> Path:
    """The run's files under root/PREFIX, as DRfC's simulator and trainer leave them."""
    rng = random.Random(1)
    layout = RunLayout(PREFIX)
    share = EPISODES // WORKERS
    for worker in range(WORKERS):
        rows, number = [], 0
        for iteration in range(ITERATIONS):
            first = number + 1
            for _ in range(share):
                number += 1
                rows.append(
                    episode("training", number, 0, rng.uniform(0, 100), rng.uniform(0, 100), 9000)
                )
            if worker == 0:  # only worker 0 evaluates each new checkpoint
                rows += [
                    episode(
                        "evaluation",
                        number,
                        trial,
                        rng.uniform(0, 100),
                        rng.uniform(0, 100),
                        15_000,
                    )
                    for trial in range(1, TRIALS + 1)
                ]
            trace = root / layout.training_simtrace(iteration, worker, WORKERS)
            trace.parent.mkdir(parents=True, exist_ok=True)
            trace.write_text(_trace(rng, range(first, number + 1)))
        path = root / layout.training_metrics(worker)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps({"metrics": rows, "version": 2, "best_model_metric": "progress"})
        )
    hyper = root / PREFIX / "ip" / "hyperparameters.json"
    hyper.parent.mkdir(parents=True, exist_ok=True)
    hyper.write_text(json.dumps({"num_episodes_between_training": EPISODES}))
    return root / PREFIX


def _size(run: Path, part: str) -> float:
    return sum(p.stat().st_size for p in run.rglob("*") if part in p.as_posix()) / 1e6


def first_render(url: str, repeat: int) -> list[tuple[float, float, float]]:
    """Seconds to the drawn reward chart, to the page's HTML and to its scripts' end
    (plotly.min.js loaded and run: DOMContentLoaded), per load."""
    from playwright.sync_api import sync_playwright

    chart = f"document.getElementById('reward-chart')?.data?.[0]?.x.length == {ITERATIONS}"
    times: list[tuple[float, float, float]] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        for _ in range(repeat + 1):  # the first load is cold: no listing or JS cached yet
            page = browser.new_page()
            start = time.perf_counter()
            page.goto(url)
            page.wait_for_function(chart, timeout=300_000)
            drawn = time.perf_counter() - start
            html, scripts = page.evaluate(
                "[performance.getEntriesByType('navigation')[0]]"
                ".map(n => [n.responseEnd, n.domContentLoadedEventEnd])[0]"
            )
            times.append((drawn, html / 1000, scripts / 1000))
            page.close()
        browser.close()
    return times


def deepracer_utils(python: str, run: Path) -> tuple[float, float]:
    """(seconds of the whole process: imports and loading, seconds of the loading alone)."""
    start = time.perf_counter()
    done = subprocess.run(
        [python, "-c", THEIRS, str(run)], check=True, capture_output=True, text=True
    )
    return time.perf_counter() - start, float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    reference = str(dr_samples.reference_python())
    with tempfile.TemporaryDirectory(prefix="trackday-bench-") as tmp, serve_s3() as server:
        work = Path(tmp)
        run = write_run(work / "run")
        bucket = server.create_bucket()
        files = [p for p in run.rglob("*") if p.is_file()]
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(
                pool.map(
                    lambda p: server.put(bucket, f"{PREFIX}/{p.relative_to(run)}", p.read_bytes()),
                    files,
                )
            )
        outputs = work / "outputs.json"
        outputs.write_text(
            json.dumps(
                BucketAccess.build(
                    target="local",
                    bucket_url=f"s3://{bucket}",
                    s3_endpoint=server.endpoint,
                    s3_access_key_id=server.key,
                    s3_secret_access_key=server.secret,
                ).to_exports()
            )
        )
        (work / "project").mkdir()
        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trackday",
                "dashboard",
                "--no-browser",
                "--port",
                str(port),
                "--project",
                str(work / "project"),
                "--outputs",
                f"bench={outputs}",
                "--models",
                str(work / "none"),
                "--refresh",
                "3600",
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_until_up(f"http://127.0.0.1:{port}/", process, work / "none.log")
            ours = first_render(f"http://127.0.0.1:{port}/s/bench/dr/{PREFIX}", args.repeat)
        finally:
            process.terminate()
            process.wait(timeout=30)
        sizes = _size(run, "metrics/"), _size(run, "simtrace")
        theirs = [deepracer_utils(reference, run) for _ in range(args.repeat)]
    print(
        f"run: {ITERATIONS} iterations x {WORKERS} workers, {len(files)} files: "
        f"{sizes[0]:.1f} MB metrics, {sizes[1]:.1f} MB simtrace"
    )
    warm = min(ours[1:])
    print(
        f"dashboard first render  cold {ours[0][0]:6.2f} s   warm best of {args.repeat} "
        f"{warm[0]:6.2f} s (HTML at {warm[1]:.2f} s, scripts run at {warm[2]:.2f} s)   "
        "(reads the metrics only)"
    )
    print(
        f"deepracer-utils              best of {args.repeat} {min(theirs)[0]:6.2f} s, "
        f"{min(t[1] for t in theirs):.2f} s of it loading after the imports   "
        "(reads metrics and all simtrace)"
    )


if __name__ == "__main__":
    main()
