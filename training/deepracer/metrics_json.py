"""A DeepRacer run's metrics as plain data: `trackday dr metrics --json`, scripts and the
dashboard read the same shape."""

from __future__ import annotations

from training.deepracer.metrics import RunMetrics, best_iterations


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def run_json(run: RunMetrics, top: int = 5) -> dict:
    """The run as plain data, for `trackday dr metrics --json`, scripts and the dashboard."""
    return {
        "layout": run.layout,
        "workers": run.workers,
        "episodes_between_training": run.episodes_between_training,
        "best_model_metric": run.metric.value,
        "notes": run.notes,
        "iterations": [
            {
                "iteration": i.number,
                "episodes": len(i.training),
                "episodes_by_worker": {str(w): n for w, n in i.episodes_by_worker().items()},
                "reward": _rounded(i.reward),
                "progress": _rounded(i.progress),
                "laps": i.laps,
                "eval_episodes": len(i.evaluation),
                "eval_reward": _rounded(i.eval_reward),
                "eval_progress": _rounded(i.eval_progress),
                "eval_laps": i.eval_laps,
                "eval_lap_ms": _rounded(i.eval_lap_ms),
            }
            for i in run.iterations
        ],
        "simtrace": [
            {
                "iteration": s.iteration,
                "episodes": s.episodes,
                "episodes_by_worker": {str(w): n for w, n in sorted(s.episodes_by_worker.items())},
                "steps": s.steps,
                "reward": _rounded(s.reward),
                "progress": _rounded(s.progress),
                "best_progress": _rounded(s.best_progress),
                "laps": s.laps,
            }
            for s in run.simtrace
        ],
        "best_iterations": [i.number for i in best_iterations(run.iterations, run.metric, top)],
        "checkpoints": run.checkpoints,
        "evaluations": [
            {
                "id": e.id,
                "laps": e.laps,
                "best_lap_ms": e.best_lap_ms,
                "progress": _rounded(e.progress),
                "trials": [
                    {
                        "trial": t.number,
                        "progress": t.progress,
                        "elapsed_ms": t.elapsed_ms,
                        "lap_ms": t.lap_ms,
                        "status": t.status,
                        "off_track": t.off_track,
                        "crashes": t.crashes,
                        "resets": t.resets,
                    }
                    for t in e.trials
                ],
            }
            for e in run.evaluations
        ],
    }
