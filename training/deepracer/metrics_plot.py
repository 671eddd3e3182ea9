"""A DeepRacer run's reward and progress per iteration as a PNG (`trackday dr metrics`)."""

from __future__ import annotations

from pathlib import Path

from training.deepracer.metrics import Iteration
from training.deepracer.simtrace import SimtraceIteration


def plot_metrics(
    found: list[Iteration], simtrace: list[SimtraceIteration], path: Path, title: str
) -> Path:
    """Reward and progress per iteration: training mean, evaluation mean, simtrace sums."""
    from matplotlib.figure import Figure  # slow to import; `--json` never draws

    figure = Figure(figsize=(12, 8))
    reward_axes, progress_axes = figure.subplots(2, 1, sharex=True)
    numbers = [i.number for i in found]
    reward_axes.plot(numbers, [i.reward for i in found], "o-", label="training (metrics)")
    evaluated = [i for i in found if i.evaluation]
    reward_axes.plot(
        [i.number for i in evaluated],
        [i.eval_reward for i in evaluated],
        "s--",
        label="evaluation (metrics)",
    )
    if simtrace:
        reward_axes.plot(
            [s.iteration for s in simtrace],
            [s.reward for s in simtrace],
            "x:",
            label="training (simtrace)",
        )
    reward_axes.set_ylabel("mean episode reward")
    reward_axes.set_title(title)
    progress_axes.plot(numbers, [i.progress for i in found], "o-", label="training")
    progress_axes.plot(
        [i.number for i in evaluated],
        [i.eval_progress for i in evaluated],
        "s--",
        label="evaluation",
    )
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
