"""`trackday dr metrics` on the real runs in deepracer-utils' sdist, against deepracer-utils.

Every sample run (DRfC with 1 and 3 workers and 17-column traces, the console's download,
DeepRacer on AWS downloads with 19-column traces, as folders and as .tar.gz) is read by the CLI
(`--json`) and by deepracer-utils itself in its own environment, in one run each; iterations,
each worker's episodes per iteration, progress per iteration and the evaluations must agree.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests import dr_samples
from trackday.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def runs():
    logs = dr_samples.logs_dir()
    return [logs / name for name in dr_samples.LOG_RUNS]


@pytest.fixture(scope="module")
def reference(runs):
    return dr_samples.reference(runs)


@pytest.fixture(scope="module")
def ours(runs):
    found = {}
    for run in runs:
        result = runner.invoke(app, ["dr", "metrics", str(run), "--json"])
        assert result.exit_code == 0, result.output
        found[str(run)] = json.loads(result.stdout)
    return found


def _by_iteration(rows: list[dict], key: str) -> dict[str, object]:
    return {str(row["iteration"]): row[key] for row in rows}


@pytest.mark.parametrize("name", dr_samples.LOG_RUNS)
def test_training_metrics_agree_with_deepracer_utils(name, runs, reference, ours):
    run = str(next(r for r in runs if r.name == name))
    theirs, mine = reference[run]["metrics"], ours[run]
    if theirs is None:  # an evaluation-only download
        assert mine["iterations"] == [] and mine["evaluations"]
        return
    assert [row["iteration"] for row in mine["iterations"]] == theirs["iterations"]
    for worker, counts in theirs["episodes"].items():
        assert {
            i: n
            for i, n in (
                (str(row["iteration"]), row["episodes_by_worker"].get(worker))
                for row in mine["iterations"]
            )
            if n
        } == counts, worker
    progress = _by_iteration(mine["iterations"], "progress")
    assert progress == pytest.approx(theirs["train_progress"], abs=1e-3)
    evaluated = {
        i: p for i, p in _by_iteration(mine["iterations"], "eval_progress").items() if p is not None
    }
    assert evaluated == pytest.approx(theirs["eval_progress"], abs=1e-3)


@pytest.mark.parametrize("name", dr_samples.LOG_RUNS)
def test_simtrace_and_evaluations_agree_with_deepracer_utils(name, runs, reference, ours):
    run = str(next(r for r in runs if r.name == name))
    theirs, mine = reference[run], ours[run]
    if theirs["training"] is None:
        assert mine["simtrace"] == []
    else:
        assert [row["iteration"] for row in mine["simtrace"]] == theirs["training"]["iterations"]
        for worker, counts in theirs["training"]["episodes"].items():
            assert {
                str(row["iteration"]): row["episodes_by_worker"][worker] for row in mine["simtrace"]
            } == counts, worker
        assert _by_iteration(mine["simtrace"], "best_progress") == pytest.approx(
            theirs["training"]["best_progress"], abs=1e-3
        )
    # Their evaluations come from the evaluation traces, ours from the evaluation metrics: the
    # same runs in the same order, the same trials, the same furthest progress.
    expected = [theirs["evaluation"][stream] for stream in sorted(theirs["evaluation"] or {})]
    assert [len(e["trials"]) for e in mine["evaluations"]] == [e["episodes"] for e in expected]
    assert [max(t["progress"] for t in e["trials"]) for e in mine["evaluations"]] == pytest.approx(
        [e["best_progress"] for e in expected], abs=1
    )


def test_three_workers_episodes_land_in_their_iterations(runs, ours):
    """30 episodes per iteration over 3 workers: 10 each; only worker 0 evaluates."""
    run = ours[str(next(r for r in runs if r.name == "sample-drfc-3-logs"))]
    assert run["workers"] == 3 and run["episodes_between_training"] == 30
    full = run["iterations"][:-1]  # the last one stopped part way
    assert all(row["episodes_by_worker"] == {"0": 10, "1": 10, "2": 10} for row in full)
    assert all(row["eval_episodes"] >= 1 for row in full)
    assert [row["episodes_by_worker"] for row in run["simtrace"]] == [
        {"0": 10, "1": 10, "2": 10}
    ] * len(run["simtrace"])


def test_every_layout_and_simtrace_version_is_recognised(runs, ours):
    layouts = {r.name: ours[str(r)]["layout"] for r in runs}
    assert layouts == {
        "sample-drfc-1-logs": "drfc",
        "sample-drfc-3-logs": "drfc",
        "sample-console-logs": "console",
        "sample-droa-solution-logs": "droa",
        "sample-droa-eval-only": "droa",
        "sample-continous-action-logs.tar.gz": "droa",
        "sample-droa-solution-logs.tar.gz": "droa",
    }
    headers = {(r / "training-simtrace" / "0-iteration.csv") for r in runs if r.is_dir()}
    columns = {len(p.read_text().split("\n", 1)[0].split(",")) for p in headers if p.exists()}
    assert columns == {17}  # DRfC's runs; the DRoA ones carry 19 and read above too


def test_droa_download_read_from_a_bucket(runs, s3_server, monkeypatch):
    """A DRoA log archive as `trackday dr droa download-logs` leaves it, kept in S3."""
    archive = next(r for r in runs if r.name == "sample-droa-solution-logs.tar.gz")
    bucket = s3_server.create_bucket()
    s3_server.put(bucket, "downloads/droa-logs.tar.gz", archive.read_bytes())
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    result = runner.invoke(
        app, ["dr", "metrics", f"s3://{bucket}/downloads/droa-logs.tar.gz", "--json"]
    )
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert len(run["iterations"]) == 29 and run["evaluations"][0]["laps"] == 3
    assert run["evaluations"][0]["best_lap_ms"] == 28312


def test_table_and_plot_of_a_console_download(runs, tmp_path):
    run = next(r for r in runs if r.name == "sample-console-logs")
    png = tmp_path / "m.png"
    result = runner.invoke(app, ["dr", "metrics", str(run), "--png", str(png), "--top", "3"])
    assert result.exit_code == 0, result.output
    assert "best iterations by evaluation progress" in result.output
    assert "evaluations" in result.output and "16.27" in result.output  # a lap time, seconds
    assert "console run, 1 worker(s), 29 iterations, 2 evaluations" in result.output
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_a_foreign_file_is_refused_in_one_line(runs, tmp_path):
    """A run whose trace is not a simulator's: the file and the missing columns are named."""
    run = tmp_path / "run"
    (run / "metrics").mkdir(parents=True)
    source = next(r for r in runs if r.name == "sample-drfc-1-logs")
    (run / "metrics" / "TrainingMetrics.json").write_bytes(
        (source / "metrics" / "TrainingMetrics.json").read_bytes()
    )
    (run / "training-simtrace").mkdir()
    (run / "training-simtrace" / "0-iteration.csv").write_text("time,value\n1,2\n")
    result = runner.invoke(app, ["dr", "metrics", str(run), "--json"])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert result.output.startswith("error: training-simtrace/0-iteration.csv: header")
    assert "missing episode, steps" in result.output
