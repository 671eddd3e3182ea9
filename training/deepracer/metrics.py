"""Training progress of a DeepRacer run, from the files the simulator writes.

`TrainingMetrics.json` (one per rollout worker; `_<n>` for worker n > 0) lists every episode
with its reward, completion and status. Each iteration, the workers together play the run's
`num_episodes_between_training` episodes, split as the simulator splits them (simapp
rollout_worker.py: each worker plays total // workers, the first total % workers one more);
only worker 0 then evaluates the new checkpoint, so only its file interleaves evaluation
episodes. A row's iteration is therefore (episode - 1) // (that worker's share). Evaluation runs
write one file each (`EvaluationMetrics-<stamp>.json`, or `metrics/evaluation/*.json` in a log
download) with a row per trial: its completion and lap time.

deepracer-utils (the field's analysis library) computes iterations as (episode - 1) // the
largest `trial` in worker 0's file, which misplaces the episodes of the workers that play one
fewer when the total does not divide evenly; its loaders also print to stdout and need pandas.
It is the reference the tests compare against on its own sample runs.

This module reads; `metrics_json.py` gives a run as plain data and `metrics_plot.py` draws it.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field

from training.deepracer.run_files import CHECKPOINTS, HYPERPARAMETERS, RunFiles, open_run
from training.deepracer.settings import BestModelMetric
from training.deepracer.simtrace import SIMTRACE_COLUMNS as SIMTRACE_COLUMNS
from training.deepracer.simtrace import SimtraceIteration, merge_simtrace, parse_simtrace


class MetricsError(ValueError):
    """A metrics file is not in the simulator's format; names the file."""


@dataclass(frozen=True)
class Episode:
    worker: int
    iteration: int
    phase: str  # "training" or "evaluation"
    reward: float
    progress: float  # percent of a lap
    elapsed_ms: int
    status: str  # "Lap complete", "Off track", ...


@dataclass
class Iteration:
    """One iteration over all workers: its training episodes and the evaluation after it."""

    number: int
    training: list[Episode] = field(default_factory=list)
    evaluation: list[Episode] = field(default_factory=list)

    @property
    def reward(self) -> float | None:
        return _mean(e.reward for e in self.training)

    @property
    def progress(self) -> float | None:
        return _mean(e.progress for e in self.training)

    @property
    def laps(self) -> int:
        return sum(e.progress >= 100 for e in self.training)

    @property
    def eval_progress(self) -> float | None:
        return _mean(e.progress for e in self.evaluation)

    @property
    def eval_reward(self) -> float | None:
        return _mean(e.reward for e in self.evaluation)

    @property
    def eval_lap_ms(self) -> float | None:
        """Mean lap time of the evaluation laps that completed."""
        return _mean(e.elapsed_ms for e in self.evaluation if e.progress >= 100)

    @property
    def eval_laps(self) -> int:
        return sum(e.progress >= 100 for e in self.evaluation)

    def episodes_by_worker(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for episode in self.training:
            counts[episode.worker] = counts.get(episode.worker, 0) + 1
        return dict(sorted(counts.items()))


@dataclass(frozen=True)
class Trial:
    """One trial of an evaluation run."""

    number: int
    progress: float
    elapsed_ms: int
    status: str
    off_track: int
    crashes: int
    resets: int

    @property
    def lap_ms(self) -> int | None:
        return self.elapsed_ms if self.progress >= 100 else None


@dataclass
class Evaluation:
    id: str  # the stamp (DRfC) or the download's id (DRoA, console)
    trials: list[Trial]

    @property
    def laps(self) -> int:
        return sum(t.lap_ms is not None for t in self.trials)

    @property
    def best_lap_ms(self) -> int | None:
        return min((t.lap_ms for t in self.trials if t.lap_ms is not None), default=None)

    @property
    def progress(self) -> float | None:
        return _mean(t.progress for t in self.trials)


def _mean(values) -> float | None:
    values = list(values)
    return statistics.fmean(values) if values else None


def episodes_per_iteration(total: int, workers: int, worker: int) -> int:
    """The share of `num_episodes_between_training` that rollout worker `worker` plays."""
    return total // workers + (1 if worker < total % workers else 0)


def _not_metrics(name: str, error: Exception) -> MetricsError:
    return MetricsError(
        f"{name}: not a simulator metrics file ({error!r}); expected "
        '{"metrics": [{"episode": .., "phase": .., "reward_score": .., '
        '"completion_percentage": .., ...}]}'
    )


def parse_training_metrics(
    text: str, worker: int = 0, name: str = "TrainingMetrics.json", per_iteration: int | None = None
) -> tuple[list[Episode], BestModelMetric]:
    """Episodes of one worker's metrics file, each with the iteration it belongs to.

    With the worker's share of episodes per iteration known, a row's iteration follows from
    its `episode`; without it (one worker, no hyperparameters at hand), a training episode that
    follows evaluation episodes starts the next iteration.
    """
    try:
        data = json.loads(text)
        metric = BestModelMetric(data.get("best_model_metric", "progress"))
        episodes, iteration, last_phase = [], 0, "training"
        for row in data["metrics"]:
            phase = row["phase"]
            if per_iteration:
                iteration = (int(row["episode"]) - 1) // per_iteration
            elif phase == "training" and last_phase == "evaluation":
                iteration += 1
            last_phase = phase
            episodes.append(
                Episode(
                    worker,
                    iteration,
                    phase,
                    float(row["reward_score"]),
                    float(row["completion_percentage"]),
                    int(row["elapsed_time_in_milliseconds"]),
                    str(row["episode_status"]),
                )
            )
    except (ValueError, KeyError, TypeError) as error:
        raise _not_metrics(name, error) from error
    return episodes, metric


def parse_evaluation_metrics(
    text: str, id: str, name: str = "EvaluationMetrics.json"
) -> Evaluation:
    try:
        rows = json.loads(text)["metrics"]
        trials = [
            Trial(
                int(row.get("trial", n)),
                float(row["completion_percentage"]),
                int(row["elapsed_time_in_milliseconds"]),
                str(row["episode_status"]),
                int(row.get("off_track_count", 0)),
                int(row.get("crash_count", 0)),
                int(row.get("reset_count", 0)),
            )
            for n, row in enumerate(rows, start=1)
        ]
    except (ValueError, KeyError, TypeError) as error:
        raise _not_metrics(name, error) from error
    return Evaluation(id, trials)


def iterations(episodes: list[Episode]) -> list[Iteration]:
    by_number: dict[int, Iteration] = {}
    for episode in episodes:
        entry = by_number.setdefault(episode.iteration, Iteration(episode.iteration))
        (entry.training if episode.phase == "training" else entry.evaluation).append(episode)
    return [by_number[n] for n in sorted(by_number)]


def best_iterations(
    found: list[Iteration], metric: BestModelMetric, top: int = 5
) -> list[Iteration]:
    """The iterations whose checkpoints evaluated best, by the run's best-model metric."""
    evaluated = [i for i in found if i.evaluation]
    if metric == BestModelMetric.LAPTIME:
        # The simulator counts an unfinished evaluation lap as 999999 ms.
        def key(i: Iteration):
            times = [e.elapsed_ms if e.progress >= 100 else 999_999 for e in i.evaluation]
            return statistics.fmean(times)

        return sorted(evaluated, key=key)[:top]
    if metric == BestModelMetric.REWARD:
        return sorted(evaluated, key=lambda i: -(i.eval_reward or 0.0))[:top]
    return sorted(
        evaluated, key=lambda i: (-(i.eval_progress or 0.0), i.eval_lap_ms or float("inf"))
    )[:top]


@dataclass
class RunMetrics:
    iterations: list[Iteration]
    simtrace: list[SimtraceIteration]
    metric: BestModelMetric
    checkpoints: dict  # deepracer_checkpoints.json: best_checkpoint, last_checkpoint
    evaluations: list[Evaluation] = field(default_factory=list)
    layout: str = "drfc"
    workers: int = 1
    episodes_between_training: int | None = None
    notes: list[str] = field(default_factory=list)


def worker_count(files: RunFiles) -> int:
    """Workers that played: a worker whose metrics file is missing still left its traces."""
    return max(
        [w + 1 for w in files.training_metrics] + [w + 1 for w, _ in files.training_simtrace],
        default=1,
    )


def _shares(
    files: RunFiles, texts: dict[str, str], total: int | None
) -> tuple[dict[int, int | None], list[str]]:
    """Each worker's episodes per iteration: from the run's hyperparameters, else (one worker)
    from the evaluation phases, else worker 0's count for every worker (said in a note)."""
    workers, count = sorted(files.training_metrics), worker_count(files)
    if total:
        return {w: episodes_per_iteration(total, count, w) for w in workers}, []
    if count < 2 or not workers:
        return dict.fromkeys(workers), []
    key = files.training_metrics[workers[0]]
    first, _ = parse_training_metrics(texts[key], workers[0], key)
    share = max((len(i.training) for i in iterations(first)), default=0) or None
    return dict.fromkeys(workers, share), [
        f"no {HYPERPARAMETERS}: assumed every worker plays worker {workers[0]}'s {share} "
        "episodes per iteration; if num_episodes_between_training does not divide by the "
        f"{count} workers, some episodes land one iteration off"
    ]


def load_run(source: str, simtrace: bool = True) -> RunMetrics:
    """Read a run's metrics, simtrace (unless `simtrace` is false), evaluations and checkpoints.

    `source`: a DRfC model prefix (`s3://BUCKET/PREFIX`, gs://, az://, a local folder) or a
    DeepRacer on AWS / console log download (its .tar.gz or unpacked folder).
    """
    files = open_run(source)
    metric_keys = list(files.training_metrics.values()) + list(files.evaluation_metrics.values())
    extras = sorted(files.extras)
    texts = dict(
        zip(
            metric_keys + extras,
            (b.decode("utf-8") for b in files.read_many(metric_keys + extras)),
            strict=True,
        )
    )
    try:
        hyper = json.loads(texts.get(HYPERPARAMETERS, "{}"))
        total = int(hyper.get("num_episodes_between_training") or 0) or None
        checkpoints = json.loads(texts.get(CHECKPOINTS, "{}"))
    except (ValueError, TypeError, AttributeError) as error:
        raise MetricsError(
            f"{source}: {HYPERPARAMETERS} or {CHECKPOINTS} does not parse ({error})"
        ) from error
    shares, notes = _shares(files, texts, total)
    episodes: list[Episode] = []
    metric = BestModelMetric.PROGRESS
    for worker, key in sorted(files.training_metrics.items()):
        found, metric = parse_training_metrics(texts[key], worker, key, shares[worker])
        episodes += found
    evaluations = [
        parse_evaluation_metrics(texts[key], id, key)
        for id, key in sorted(files.evaluation_metrics.items())
    ]
    trace_keys = sorted(files.training_simtrace.items()) if simtrace else []
    traces = files.read_many([key for _, key in trace_keys])
    parts = [
        parse_simtrace(content.decode("utf-8"), iteration, key, worker)
        for ((worker, iteration), key), content in zip(trace_keys, traces, strict=True)
    ]
    return RunMetrics(
        iterations(episodes),
        merge_simtrace(parts),
        metric,
        checkpoints,
        evaluations,
        files.layout,
        worker_count(files),
        total,
        notes,
    )
