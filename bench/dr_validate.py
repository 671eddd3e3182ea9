"""Cost of checking a reward function in its own process, against calling it in-process.

Goal (issue 5): `trackday dr validate` finishes a real track's full set of scenarios in
under 5 s, and isolating the user's code (child process, per-call timer, import guard)
costs at most 3x the bare calls of the same function on the same params (each call on a
deep copy of its params, as the simulator does), measured in the same run.

    PYTHONPATH=. .venv/bin/python bench/dr_validate.py [--world reinvent_base] [--repeat 3]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

from training.deepracer.reward_check import check_reward_function
from training.deepracer.scenarios import scenarios
from training.deepracer.settings import DeepRacerSettings
from training.deepracer.track import Track

TRACKS = Path(__file__).resolve().parents[1] / ".." / "shared" / "tracks"
REWARD = """
import math


def reward_function(params):
    waypoints = params["waypoints"]
    prev_i, next_i = params["closest_waypoints"]
    dx = waypoints[next_i][0] - waypoints[prev_i][0]
    dy = waypoints[next_i][1] - waypoints[prev_i][1]
    misalignment = abs((math.degrees(math.atan2(dy, dx)) - params["heading"] + 180) % 360 - 180)
    reward = 1.0 - params["distance_from_center"] / (params["track_width"] / 2)
    if misalignment > 30 or not params["all_wheels_on_track"]:
        reward *= 0.5
    return float(max(reward, 1e-3))
"""


def bare_calls(laps) -> float:
    """The baseline: the same function called in this process on the same params."""
    namespace: dict = {}
    exec(compile(REWARD, "reward_function.py", "exec"), namespace)
    function = namespace["reward_function"]
    started = time.perf_counter()
    for lap in laps:
        waypoints = [tuple(p) for p in lap.waypoints]
        for step in lap.steps:
            function(copy.deepcopy(dict(step, waypoints=waypoints)))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--world", default="reinvent_base")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    settings = DeepRacerSettings(world=args.world, race_type="OBJECT_AVOIDANCE")
    actions = [(-30.0, 0.6), (0.0, 1.0), (30.0, 0.6)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reward_function.py"
        path.write_text(REWARD)
        best_generate = best_check = best_bare = float("inf")
        for _ in range(args.repeat):
            started = time.perf_counter()
            track = Track.load(TRACKS, args.world)
            laps = scenarios(track, settings, actions)
            best_generate = min(best_generate, time.perf_counter() - started)
            started = time.perf_counter()
            result = check_reward_function(path, laps)
            best_check = min(best_check, time.perf_counter() - started)
            assert result.ok, [str(p) for p in result.problems]
            best_bare = min(best_bare, bare_calls(laps))
    calls = sum(len(lap.steps) for lap in laps)
    print(f"world {args.world}: {len(laps)} scenarios, {calls} calls")
    print(f"generate params: {best_generate:.2f} s")
    print(f"isolated check:  {best_check:.2f} s (child process, timer, import guard)")
    print(f"bare calls:      {best_bare:.3f} s")
    print(f"total validate:  {best_generate + best_check:.2f} s (goal < 5 s)")
    print(f"ratio isolated / bare: {best_check / best_bare:.2f} (goal <= 3)")


if __name__ == "__main__":
    main()
