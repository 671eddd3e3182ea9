"""How fast a simulation worker runs: its real-time factor (RTF) and steps per second, from
the lines the simulator writes to its log.

The RTF (simulated seconds per wall-clock second) is what limits DeepRacer training speed,
and what GPU rendering and more workers change. simapp 6 has no RTF topic or log line of its
own by default, but its rollout worker logs every step (`sim_trace_log` in
bundle/markov/metrics/s3_metrics.py, v6.0.4) as

    SIM_TRACE_LOG:episode,steps,X,Y,yaw,steer,throttle,action,reward,done,
                  all_wheels_on_track,progress,closest_waypoint,track_len,tstamp,
                  episode_status,pause_duration,obstacle_crash_counter,wall_clock

where `tstamp` is the simulation clock and `wall_clock` is `time.time()` at the same step
(bundle/markov/agent_ctrl/rollout_agent_ctrl.py). The RTF over a window of steps is their
ratio, computed as simapp's own utils/debug/analyze_simtrace_stability.py does: the sum of
the simulated-time steps over the sum of the wall-time steps, leaving out the rows of a car
being reset (`prepare`, `pause`, `off_track`). With `DEBUG_REWARD=true` simapp also patches
its default reward function (docker/files/robomaker/debug-reward.diff) to print
`TIME: s: <steps>, rtf: <rtf>, fps:<steps per simulated second>`; those lines are used when
no step lines are in the window (an older simulator without `wall_clock`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

MARKER = "SIM_TRACE_LOG:"
# Fields of a v6 step line, counted from its end: `action` may hold a list, so the fields
# after it are found from the right.
STEP_FIELDS = 19
_FROM_END = {"tstamp": -5, "episode_status": -4, "wall_clock": -1}
# simapp's analyzer leaves these out: the car stands still while it is reset.
TRANSITION_STATUSES = frozenset({"off_track", "pause", "prepare"})
_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|nan|inf)"
TIME_LINE = re.compile(rf"TIME: s: (\d+), rtf: {_NUMBER}, fps:\s*{_NUMBER}")


@dataclass(frozen=True)
class Step:
    """One step line: the simulation clock and the wall clock at that step."""

    sim_time: float
    wall_clock: float
    status: str


@dataclass(frozen=True)
class SimSpeed:
    """A worker's speed over the steps read: simulated seconds per wall second, and steps
    per wall second (while the car drives, as the RTF)."""

    rtf: float
    steps_per_s: float
    steps: int  # how many steps the numbers are over

    def describe(self) -> str:
        return f"RTF {self.rtf:.2f}, {self.steps_per_s:.1f} steps/s"


def parse_step(line: str) -> Step | None:
    """The step in a log line, or None for any other line (log lines of every kind pass
    here; a truncated or older-format step line is not a step)."""
    at = line.find(MARKER)
    if at < 0:
        return None
    fields = line[at + len(MARKER) :].strip().split(",")
    if len(fields) < STEP_FIELDS:
        return None
    try:
        sim_time = float(fields[_FROM_END["tstamp"]])
        wall_clock = float(fields[_FROM_END["wall_clock"]])
    except ValueError:
        return None
    return Step(sim_time, wall_clock, fields[_FROM_END["episode_status"]].strip())


def _from_steps(steps: list[Step]) -> SimSpeed | None:
    driving = [s for s in steps if s.status not in TRANSITION_STATUSES]
    sim_sum = wall_sum = 0.0
    pairs = 0
    for before, after in pairwise(driving):
        sim, wall = after.sim_time - before.sim_time, after.wall_clock - before.wall_clock
        if sim >= 0 and wall > 0:
            sim_sum, wall_sum, pairs = sim_sum + sim, wall_sum + wall, pairs + 1
    if not pairs:
        return None
    return SimSpeed(sim_sum / wall_sum, pairs / wall_sum, pairs)


def _from_time_line(line: str) -> SimSpeed | None:
    found = TIME_LINE.search(line)
    if not found:
        return None
    steps, rtf, fps = int(found[1]), float(found[2]), float(found[3])
    # fps counts steps per simulated second; times the RTF it is steps per wall second.
    return SimSpeed(rtf, fps * rtf, steps)


def speed(lines: Iterable[str]) -> SimSpeed | None:
    """A worker's speed from its recent log lines, oldest first; None when they hold no
    step yet (a worker still starting)."""
    steps: list[Step] = []
    last_time: SimSpeed | None = None
    for line in lines:
        step = parse_step(line)
        if step is not None:
            steps.append(step)
        else:
            last_time = _from_time_line(line) or last_time
    return _from_steps(steps) or last_time
