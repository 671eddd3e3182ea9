"""Training progress of a DeepRacer run, from the files the simulator writes to the bucket.

`metrics/TrainingMetrics.json` (one per worker; `_<n>` for worker n > 0) lists every episode
with its reward, completion and status, training and evaluation phases interleaved: the
workers evaluate each new checkpoint between training iterations. `training-simtrace/
<n>-iteration.csv` holds every step of iteration n. This module turns both into a summary per
iteration, a PNG and a table of the best checkpoints.
"""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from training import storage
from training.deepracer.settings import BestModelMetric

SIMTRACE_COLUMNS = ("episode", "steps", "X", "Y", "yaw", "steer", "throttle", "action", "reward",
                    "done", "all_wheels_on_track", "progress", "closest_waypoint", "track_len",
                    "tstamp", "episode_status", "pause_duration", "obstacle_crash_counter",
                    "wall_clock")
_METRICS_FILE = re.compile(r"TrainingMetrics(?:_(\d+))?\.json$")
_SIMTRACE_FILE = re.compile(r"(?:^|/)(?:(\d+)/)?training-simtrace/(\d+)-iteration\.csv$")


class MetricsError(ValueError):
    """A metrics or simtrace file is not in the simulator's format; names the file."""


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


@dataclass(frozen=True)
class SimtraceIteration:
    """Step-level numbers of one iteration's simtrace, summed per episode."""

    iteration: int
    episodes: int
    steps: int
    reward: float  # mean of the per-episode reward sums
    progress: float  # mean of the per-episode best progress
    laps: int


def _mean(values) -> float | None:
    values = list(values)
    return statistics.fmean(values) if values else None


def parse_training_metrics(text: str, worker: int = 0, name: str = "TrainingMetrics.json"
                           ) -> tuple[list[Episode], BestModelMetric]:
    """Episodes of one worker's metrics file, each with the iteration it belongs to.

    A training episode that follows evaluation episodes starts the next iteration.
    """
    try:
        data = json.loads(text)
        rows = data["metrics"]
        metric = BestModelMetric(data.get("best_model_metric", "progress"))
        episodes, iteration, last_phase = [], 0, "training"
        for row in rows:
            phase = row["phase"]
            if phase == "training" and last_phase == "evaluation":
                iteration += 1
            last_phase = phase
            episodes.append(Episode(worker, iteration, phase, float(row["reward_score"]),
                                    float(row["completion_percentage"]),
                                    int(row["elapsed_time_in_milliseconds"]),
                                    str(row["episode_status"])))
    except (ValueError, KeyError, TypeError) as error:
        raise MetricsError(f"{name}: not a simulator metrics file ({error!r}); expected "
                           '{"metrics": [{"phase": .., "reward_score": .., ...}]}') from error
    return episodes, metric


def iterations(episodes: list[Episode]) -> list[Iteration]:
    by_number: dict[int, Iteration] = {}
    for episode in episodes:
        entry = by_number.setdefault(episode.iteration, Iteration(episode.iteration))
        (entry.training if episode.phase == "training" else entry.evaluation).append(episode)
    return [by_number[n] for n in sorted(by_number)]


def parse_simtrace(text: str, iteration: int, name: str = "simtrace") -> SimtraceIteration:
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) [:len(SIMTRACE_COLUMNS)] != SIMTRACE_COLUMNS:
        raise MetricsError(f"{name}: header {reader.fieldnames} is not the simulator's "
                           f"simtrace header ({','.join(SIMTRACE_COLUMNS)})")
    rewards: dict[int, float] = defaultdict(float)
    progress: dict[int, float] = defaultdict(float)
    lapped: set[int] = set()
    steps = 0
    try:
        for row in reader:
            episode = int(row["episode"])
            rewards[episode] += float(row["reward"])
            progress[episode] = max(progress[episode], float(row["progress"]))
            if row["episode_status"] == "lap_complete":
                lapped.add(episode)
            steps += 1
    except (ValueError, TypeError) as error:
        raise MetricsError(f"{name}: line {reader.line_num}: {error}") from error
    return SimtraceIteration(iteration, len(rewards), steps, _mean(rewards.values()) or 0.0,
                             _mean(progress.values()) or 0.0, len(lapped))


def best_iterations(found: list[Iteration], metric: BestModelMetric,
                    top: int = 5) -> list[Iteration]:
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
    return sorted(evaluated, key=lambda i: (-(i.eval_progress or 0.0),
                                            i.eval_lap_ms or float("inf")))[:top]


def plot_metrics(found: list[Iteration], simtrace: list[SimtraceIteration], path: Path,
                 title: str) -> Path:
    """Reward and progress per iteration: training mean, evaluation mean, simtrace sums."""
    figure = Figure(figsize=(12, 8))
    reward_axes, progress_axes = figure.subplots(2, 1, sharex=True)
    numbers = [i.number for i in found]
    reward_axes.plot(numbers, [i.reward for i in found], "o-", label="training (metrics)")
    evaluated = [i for i in found if i.evaluation]
    reward_axes.plot([i.number for i in evaluated], [i.eval_reward for i in evaluated], "s--",
                     label="evaluation (metrics)")
    if simtrace:
        reward_axes.plot([s.iteration for s in simtrace], [s.reward for s in simtrace], "x:",
                         label="training (simtrace)")
    reward_axes.set_ylabel("mean episode reward")
    reward_axes.set_title(title)
    progress_axes.plot(numbers, [i.progress for i in found], "o-", label="training")
    progress_axes.plot([i.number for i in evaluated], [i.eval_progress for i in evaluated], "s--",
                       label="evaluation")
    progress_axes.set_ylabel("mean progress (%)")
    progress_axes.set_xlabel("iteration")
    progress_axes.set_ylim(0, 105)
    for axes in (reward_axes, progress_axes):
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def metrics_worker(key: str) -> int | None:
    """The worker a metrics file belongs to, or None when the key is not a metrics file."""
    match = _METRICS_FILE.search(key)
    if not match:
        return None
    return int(match.group(1) or 0)


def simtrace_iteration(key: str) -> int | None:
    match = _SIMTRACE_FILE.search(key)
    return int(match.group(2)) if match else None


def merge_simtrace(parts: list[SimtraceIteration]) -> list[SimtraceIteration]:
    """One entry per iteration over all workers' simtrace files."""
    grouped: dict[int, list[SimtraceIteration]] = defaultdict(list)
    for part in parts:
        grouped[part.iteration].append(part)
    merged = []
    for number in sorted(grouped):
        group = grouped[number]
        episodes = sum(p.episodes for p in group)
        weight = episodes or 1
        merged.append(SimtraceIteration(
            number, episodes, sum(p.steps for p in group),
            sum(p.reward * p.episodes for p in group) / weight,
            sum(p.progress * p.episodes for p in group) / weight, sum(p.laps for p in group)))
    return merged


@dataclass
class RunMetrics:
    iterations: list[Iteration]
    simtrace: list[SimtraceIteration]
    metric: BestModelMetric
    checkpoints: dict  # deepracer_checkpoints.json: best_checkpoint, last_checkpoint


def load_run(run_url: str) -> RunMetrics:
    """Read a run's metrics, simtrace and checkpoint record from `<bucket>/<model prefix>`."""
    base = run_url.rstrip("/")
    episodes: list[Episode] = []
    metric = BestModelMetric.PROGRESS
    parts: list[SimtraceIteration] = []
    checkpoints: dict = {}
    for url in storage.list_files(base):
        relative = url[len(base) + 1:] if url.startswith(base + "/") else url
        worker = metrics_worker(relative) if relative.startswith("metrics/Training") else None
        iteration = simtrace_iteration(relative)
        if worker is not None:
            found, metric = parse_training_metrics(storage.read_text(url), worker, relative)
            episodes += found
        elif iteration is not None:
            parts.append(parse_simtrace(storage.read_text(url), iteration, relative))
        elif relative == "model/deepracer_checkpoints.json":
            checkpoints = json.loads(storage.read_text(url))
    if not episodes:
        raise MetricsError(f"no metrics/TrainingMetrics.json under {base}: give the URL of a "
                           "run's model prefix, e.g. s3://BUCKET/rl-deepracer-sagemaker")
    return RunMetrics(iterations(episodes), merge_simtrace(parts), metric, checkpoints)
