"""`trackday dr metrics`: a run's files in the simulator's formats, generated here."""

import pytest

from tests.training.deepracer.dr_data import EPISODES, ITERATIONS, TRIALS, WORKERS, write_run
from training.deepracer.metrics import (
    MetricsError,
    best_iterations,
    load_run,
    parse_simtrace,
    parse_training_metrics,
    plot_metrics,
)
from training.deepracer.settings import BestModelMetric


def test_load_run_from_local_files(tmp_path):
    run = load_run(str(write_run(tmp_path)))
    assert len(run.iterations) == ITERATIONS and run.metric == BestModelMetric.PROGRESS
    first, last = run.iterations[0], run.iterations[-1]
    assert len(first.training) == WORKERS * EPISODES and len(first.evaluation) == WORKERS * TRIALS
    assert last.reward > first.reward and last.eval_progress == 100 > first.eval_progress
    assert last.eval_laps == WORKERS * TRIALS and last.eval_lap_ms == pytest.approx(12_498)
    assert [s.iteration for s in run.simtrace] == list(range(ITERATIONS))
    assert run.simtrace[0].episodes == 10 and run.simtrace[0].steps == 300
    assert run.simtrace[-1].laps == 10 and run.simtrace[0].laps == 0
    assert run.checkpoints["best_checkpoint"]["name"] == "5_Step-6000.ckpt"


def test_load_run_from_s3(s3_server, monkeypatch, tmp_path):
    """The same files put into a real S3 server on loopback, read through the S3 API."""
    bucket = s3_server.create_bucket()
    write_run(tmp_path, prefix="runs/speedy-1")
    for path in (p for p in tmp_path.rglob("*") if p.is_file()):
        s3_server.put(bucket, path.relative_to(tmp_path).as_posix(), path.read_bytes())
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    run = load_run(f"s3://{bucket}/runs/speedy-1")
    assert len(run.iterations) == ITERATIONS and len(run.simtrace) == ITERATIONS
    assert run.checkpoints["last_checkpoint"]["name"] == "6_Step-7200.ckpt"


def test_best_iterations_follow_the_metric(tmp_path):
    run = load_run(str(write_run(tmp_path)))
    by_progress = best_iterations(run.iterations, BestModelMetric.PROGRESS, top=3)
    assert [i.number for i in by_progress] == [5, 4, 3]  # full laps first, then faster
    by_time = best_iterations(run.iterations, BestModelMetric.LAPTIME, top=2)
    assert [i.number for i in by_time] == [5, 4]
    by_reward = best_iterations(run.iterations, BestModelMetric.REWARD, top=1)
    assert by_reward[0].number == 5


def test_plot_is_written(tmp_path):
    run = load_run(str(write_run(tmp_path)))
    png = plot_metrics(run.iterations, run.simtrace, tmp_path / "m.png", "run")
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 20_000


def test_bad_files_are_named():
    with pytest.raises(MetricsError, match=r"TrainingMetrics\.json: not a simulator metrics file"):
        parse_training_metrics('{"episodes": []}')
    with pytest.raises(MetricsError, match=r"3-iteration\.csv: header"):
        parse_simtrace("a,b\n1,2\n", 3, "3-iteration.csv")


def test_run_without_metrics(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MetricsError, match=r"no metrics/TrainingMetrics\.json under"):
        load_run(str(tmp_path / "empty"))
