"""`trackday dr metrics`: a run's files in the simulator's formats, generated here."""

import json
import random

import pytest

from training.deepracer.layout import RunLayout
from training.deepracer.metrics import (
    SIMTRACE_COLUMNS,
    MetricsError,
    best_iterations,
    load_run,
    parse_simtrace,
    parse_training_metrics,
    plot_metrics,
)
from training.deepracer.settings import BestModelMetric

ITERATIONS, WORKERS, EPISODES, TRIALS = 6, 2, 10, 3


def episode(phase, number, trial, reward, progress, elapsed_ms):
    status = "Lap complete" if progress >= 100 else "Off track"
    return {"reward_score": round(reward), "metric_time": 1_000_000 + number,
            "start_time": 1_000_000, "elapsed_time_in_milliseconds": elapsed_ms,
            "episode": number, "trial": trial, "phase": phase,
            "completion_percentage": int(progress), "episode_status": status}


def simtrace_rows(rng, iteration, episodes):
    """Steps as the simulator appends them: str() of each value, in its column order."""
    lines = [",".join(SIMTRACE_COLUMNS)]
    for number in episodes:
        final = min(100.0, 20.0 * (iteration + 1) + rng.uniform(0, 10))
        steps = 30
        for step in range(1, steps + 1):
            progress = final * step / steps
            done = step == steps
            status = ("lap_complete" if final >= 100 else "off_track") if done else "in_progress"
            values = [number, step, 1.5 + step * 0.01, 0.3, 12.5, 15.0, 1.0, 2, 1.0,
                      done, True, round(progress, 4), step, 17.71, 100.0 + step / 15,
                      status, 0.0, 0, 1_700_000_000.0 + step]
            lines.append(",".join(str(v) for v in values))
    return "\n".join(lines) + "\n"


def write_run(root, prefix="rl-deepracer-sagemaker", metric="progress"):
    rng = random.Random(7)
    layout = RunLayout(model_prefix=prefix)
    for worker in range(WORKERS):
        rows, number = [], 0
        for iteration in range(ITERATIONS):
            for _ in range(EPISODES):
                number += 1
                rows.append(episode("training", number, 0, 10 * iteration + rng.uniform(0, 5),
                                    min(100, 15 * iteration + rng.uniform(0, 10)), 9000))
            for trial in range(1, TRIALS + 1):
                progress = 100 if iteration >= 4 else 20 * (iteration + 1)
                rows.append(episode("evaluation", number, trial, 50 + iteration, progress,
                                    15_000 - 500 * iteration - trial))
            trace = root / layout.training_simtrace(iteration, worker, WORKERS)
            trace.parent.mkdir(parents=True, exist_ok=True)
            trace.write_text(simtrace_rows(rng, iteration,
                                           range(iteration * 5 + 1, iteration * 5 + 6)))
        path = root / layout.training_metrics(worker)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"metrics": rows, "version": 2, "best_model_metric": metric}))
    checkpoints = root / layout.checkpoints_json
    checkpoints.parent.mkdir(parents=True, exist_ok=True)
    checkpoints.write_text(json.dumps({
        "best_checkpoint": {"name": "5_Step-6000.ckpt", "avg_eval_metric": 100.0,
                            "time_stamp": 812.3},
        "last_checkpoint": {"name": "6_Step-7200.ckpt", "avg_eval_metric": 100.0,
                            "time_stamp": 901.7}}))
    return root / prefix


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
