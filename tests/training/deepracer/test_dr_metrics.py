"""`trackday dr metrics`: a run's files in the simulator's formats, generated here.

The real runs users have are read in test_dr_samples.py; these cover what the samples do not.
"""

import json

import pytest

from tests.training.deepracer.dr_data import EPISODES, ITERATIONS, TRIALS, WORKERS, write_run
from training import storage
from training.deepracer.metrics import (
    MetricsError,
    best_iterations,
    load_run,
    parse_training_metrics,
)
from training.deepracer.metrics_plot import plot_metrics
from training.deepracer.run_files import RunFilesError
from training.deepracer.settings import BestModelMetric
from training.deepracer.simtrace import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    SimtraceError,
    parse_simtrace,
)


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


@pytest.mark.parametrize("keys_from", ["process", "block"])
def test_load_run_from_s3(s3_server, monkeypatch, tmp_path, keys_from):
    """The same files put into a real S3 server on loopback, read through the S3 API, with
    the keys in the process environment or in a storage.environment block (as the CLI and
    the dashboard give a stack's endpoint; the parallel reads must see the block's)."""
    bucket = s3_server.create_bucket()
    write_run(tmp_path, prefix="runs/speedy-1")
    for path in (p for p in tmp_path.rglob("*") if p.is_file()):
        s3_server.put(bucket, path.relative_to(tmp_path).as_posix(), path.read_bytes())
    for key, value in s3_server.env().items():
        if keys_from == "process":
            monkeypatch.setenv(key, value)
        else:
            monkeypatch.delenv(key, raising=False)
    with storage.environment(s3_server.env() if keys_from == "block" else {}):
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
    with pytest.raises(SimtraceError, match=r"3-iteration\.csv: header .* missing episode"):
        parse_simtrace("a,b\n1,2\n", 3, "3-iteration.csv")


def test_run_without_metrics(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunFilesError, match=r"no DeepRacer metrics found; give a run's model"):
        load_run(str(tmp_path / "empty"))


def _trace(columns, extra=()):
    """Two steps of one episode with the given header, values by column name."""
    values = {
        "episode": 4,
        "steps": 1,
        "reward": 1.5,
        "progress": 12.5,
        "episode_status": "in_progress",
    }
    header = [*columns, *extra]
    lines = [",".join(header)]
    for step, progress in ((1, 12.5), (2, 40.0)):
        row = values | {"steps": step, "progress": progress}
        lines.append(",".join(str(row.get(c, 0)) for c in header))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("optional", [0, 1, 2, 3])
def test_every_simtrace_version_reads(optional):
    """16 to 19 columns (the simulator's header grew), and a column a later one may add."""
    columns = REQUIRED_COLUMNS + OPTIONAL_COLUMNS[:optional]
    for extra in ((), ("future_column",)):
        found = parse_simtrace(_trace(columns, extra), 7, "7-iteration.csv")
        assert (found.episodes, found.steps, found.reward) == (1, 2, 3.0)
        assert found.best_progress == 40.0 and found.episodes_by_worker == {0: 1}


def _worker_metrics(worker, total, workers, iterations):
    """A worker's TrainingMetrics as the simulator writes it: its share of `total` episodes
    per iteration (total // workers, the first total % workers one more); worker 0 then
    evaluates the new checkpoint twice."""
    share = total // workers + (worker < total % workers)
    rows, episode = [], 0
    for _ in range(iterations):
        for trial in range(1, share + 1):
            episode += 1
            rows.append(
                {
                    "episode": episode,
                    "trial": trial if worker == 0 else episode,
                    "phase": "training",
                    "reward_score": 5,
                    "completion_percentage": 20,
                    "elapsed_time_in_milliseconds": 900,
                    "episode_status": "Off track",
                }
            )
        if worker == 0:
            rows += [
                rows[-1]
                | {
                    "phase": "evaluation",
                    "completion_percentage": 100,
                    "episode_status": "Lap complete",
                }
            ] * 2
    return {"metrics": rows, "version": 2.0, "best_model_metric": "progress"}


def test_uneven_workers_land_in_their_iterations(tmp_path):
    """20 episodes over 3 workers: 7, 7 and 6 per iteration. Only worker 0 evaluates, so
    the others' iterations come from their episode numbers and the run's hyperparameters."""
    run = tmp_path / "run"
    (run / "metrics").mkdir(parents=True)
    (run / "ip").mkdir()
    (run / "ip" / "hyperparameters.json").write_text('{"num_episodes_between_training": 20}')
    for worker in range(3):
        name = "TrainingMetrics.json" if worker == 0 else f"TrainingMetrics_{worker}.json"
        (run / "metrics" / name).write_text(json.dumps(_worker_metrics(worker, 20, 3, 4)))
    found = load_run(str(run))
    assert [i.number for i in found.iterations] == [0, 1, 2, 3]
    assert all(i.episodes_by_worker() == {0: 7, 1: 7, 2: 6} for i in found.iterations)
    assert all(len(i.evaluation) == 2 and i.eval_laps == 2 for i in found.iterations)


def test_without_hyperparameters_workers_take_worker_0s_share(tmp_path):
    """No ip/hyperparameters.json (a copied run): worker 0's count per iteration is used for
    every worker, and the output says so."""
    run = tmp_path / "run"
    (run / "metrics").mkdir(parents=True)
    for worker in range(2):
        name = "TrainingMetrics.json" if worker == 0 else f"TrainingMetrics_{worker}.json"
        (run / "metrics" / name).write_text(json.dumps(_worker_metrics(worker, 16, 2, 3)))
    found = load_run(str(run))
    assert [i.episodes_by_worker() for i in found.iterations] == [{0: 8, 1: 8}] * 3
    assert found.workers == 2 and "assumed every worker plays worker 0's 8" in found.notes[0]
