"""Step-level training traces (`<i>-iteration.csv`) summed per episode and per iteration.

The simulator appends one row per step. Its columns grew over the versions still in use:
16 up to 2020, then `pause_duration` (17, most DRfC runs users hold), `obstacle_crash_counter`
(18) and `wall_clock` (19, simapp 5.x/6.x and DRoA). Columns are found by name, so every version
reads, extra columns a later simulator may add are carried along unread, and only a file
lacking the columns every version wrote is refused as not a simtrace.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field

# What every simulator version wrote; the optional ones came later.
REQUIRED_COLUMNS = (
    "episode",
    "steps",
    "X",
    "Y",
    "yaw",
    "steer",
    "throttle",
    "action",
    "reward",
    "done",
    "all_wheels_on_track",
    "progress",
    "closest_waypoint",
    "track_len",
    "tstamp",
    "episode_status",
)
OPTIONAL_COLUMNS = ("pause_duration", "obstacle_crash_counter", "wall_clock")
SIMTRACE_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS  # the current simulator's header


class SimtraceError(ValueError):
    """A file that is not a simtrace, or a row that does not parse; names the file."""


@dataclass(frozen=True)
class SimtraceIteration:
    """Step-level numbers of one iteration, over the workers whose traces were read."""

    iteration: int
    episodes: int
    steps: int
    reward: float  # mean of the per-episode reward sums
    progress: float  # mean of the per-episode best progress
    laps: int
    best_progress: float = 0.0  # the furthest any episode got
    episodes_by_worker: dict[int, int] = field(default_factory=dict)


def parse_simtrace(
    text: str, iteration: int, name: str = "simtrace", worker: int = 0
) -> SimtraceIteration:
    """One worker's trace of one iteration."""
    rows = csv.reader(io.StringIO(text))
    header = next(rows, [])
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise SimtraceError(
            f"{name}: header {header[:20]} is not a simulator simtrace header; "
            f"missing {', '.join(missing)} (expected {','.join(REQUIRED_COLUMNS)}"
            f"[,{','.join(OPTIONAL_COLUMNS)}])"
        )
    at = {
        column: header.index(column)
        for column in ("episode", "reward", "progress", "episode_status")
    }
    rewards: dict[int, float] = defaultdict(float)
    progress: dict[int, float] = defaultdict(float)
    lapped: set[int] = set()
    steps = 0
    try:
        for row in rows:
            if not row:
                continue
            episode = int(row[at["episode"]])
            rewards[episode] += float(row[at["reward"]])
            value = float(row[at["progress"]])
            if value > progress[episode]:
                progress[episode] = value
            if row[at["episode_status"]] == "lap_complete":
                lapped.add(episode)
            steps += 1
    except (ValueError, IndexError) as error:
        raise SimtraceError(f"{name}: line {rows.line_num}: {error}") from error
    count = len(rewards)
    return SimtraceIteration(
        iteration,
        count,
        steps,
        sum(rewards.values()) / (count or 1),
        sum(progress.values()) / (count or 1),
        len(lapped),
        max(progress.values(), default=0.0),
        {worker: count},
    )


def merge_simtrace(parts: list[SimtraceIteration]) -> list[SimtraceIteration]:
    """One entry per iteration over all workers' traces."""
    grouped: dict[int, list[SimtraceIteration]] = defaultdict(list)
    for part in parts:
        grouped[part.iteration].append(part)
    merged = []
    for number in sorted(grouped):
        group = grouped[number]
        episodes = sum(p.episodes for p in group)
        weight = episodes or 1
        merged.append(
            SimtraceIteration(
                number,
                episodes,
                sum(p.steps for p in group),
                sum(p.reward * p.episodes for p in group) / weight,
                sum(p.progress * p.episodes for p in group) / weight,
                sum(p.laps for p in group),
                max(p.best_progress for p in group),
                {w: n for p in group for w, n in p.episodes_by_worker.items()},
            )
        )
    return merged
