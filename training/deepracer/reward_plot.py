"""The PNG `trackday dr validate` writes: the reward along a lap, drawn on the track map."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure  # no pyplot: files only, never a window or global state

from training.deepracer.scenarios import Scenario
from training.deepracer.track import Track


def plot_reward_lap(
    track: Track, scenarios: list[Scenario], rewards: list[list[float]], path: Path
) -> Path:
    """Left: the track, each centre-line step coloured by its reward. Right: reward against
    progress for every scenario, so a cliff or a spike is easy to see."""
    figure = Figure(figsize=(14, 6))
    track_axes, lap_axes = figure.subplots(1, 2)
    for border in (track.inner, track.outer):
        track_axes.plot(border[:, 0], border[:, 1], color="0.3", linewidth=1)
    track_axes.plot(
        track.center[:, 0], track.center[:, 1], color="0.7", linestyle="--", linewidth=0.8
    )
    first = scenarios[0]
    points = track_axes.scatter(
        [p["x"] for p in first.steps],
        [p["y"] for p in first.steps],
        c=rewards[0],
        cmap="viridis",
        s=18,
        zorder=3,
    )
    figure.colorbar(points, ax=track_axes, label=f"reward ({first.name})")
    objects = first.steps[0]["objects_location"]
    if objects:
        track_axes.scatter(
            [o[0] for o in objects],
            [o[1] for o in objects],
            marker="s",
            color="tab:red",
            s=40,
            label="objects",
            zorder=4,
        )
        track_axes.legend(loc="upper right")
    track_axes.set_title(f"{track.name}: reward along the centre line")
    track_axes.set_aspect("equal")
    track_axes.set_xlabel("x (m)")
    track_axes.set_ylabel("y (m)")
    for scenario, values in zip(scenarios, rewards, strict=True):
        progress = [p["progress"] for p in scenario.steps]
        style = "o" if len(values) < 20 else "-"
        lap_axes.plot(progress, values, style, label=scenario.name, linewidth=1)
    lap_axes.set_xlabel("progress (%)")
    lap_axes.set_ylabel("reward")
    lap_axes.set_title("reward per scenario along the lap")
    lap_axes.legend(fontsize=8)
    lap_axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path
