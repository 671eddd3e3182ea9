"""Validation drives the laps training drives, and their params obey the simulator's rules.

The hold-out reward function below knows nothing of trackday: it asserts what the
simulator guarantees about its params (simapp v6.0.4 bundle/markov/agent_ctrl/utils.py and
track_geom/track_data.py), from the geometry of the waypoints it is given. It must pass on
every lap, in both senses, at every offset, on real tracks of each sense.
"""

from __future__ import annotations

import itertools

import pytest

from tests.training.deepracer.dr_data import TRACKS, write_folder
from training.deepracer.scenarios import FIRST_LAP_CLOCK_S, scenarios
from training.deepracer.settings import DeepRacerSettings
from training.deepracer.track import Track
from training.deepracer.validate import validate_custom_files

HOLD_OUT = """
def _side(waypoints, prev, nxt, x, y):
    (ax, ay), (bx, by) = waypoints[prev], waypoints[nxt]
    return (bx - ax) * (y - ay) - (by - ay) * (x - ax)


def _nearest_segment(waypoints, x, y):
    best, found = None, 0
    for i in range(len(waypoints) - 1):
        (ax, ay), (bx, by) = waypoints[i], waypoints[i + 1]
        dx, dy = bx - ax, by - ay
        t = max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)))
        d = (ax + t * dx - x) ** 2 + (ay + t * dy - y) ** 2
        if best is None or d < best:
            best, found = d, i
    return found


def reward_function(params):
    waypoints = params["waypoints"]
    prev, nxt = params["closest_waypoints"]
    assert 0 <= prev < len(waypoints) and nxt in (prev + 1, (prev + 1) % len(waypoints)), (
        "closest_waypoints", prev, nxt)
    assert 0.0 <= params["progress"] <= 100.0, ("progress", params["progress"])
    for (x, y), said in zip(params["objects_location"], params["objects_left_of_center"]):
        i = _nearest_segment(waypoints, x, y)
        assert (_side(waypoints, i, i + 1, x, y) > 0) == said, ("objects_left_of_center", x, y)
    if not params["all_wheels_on_track"]:  # off the road the nearest centre line may be
        return 1.0                         # another stretch of the track
    # the waypoints run in the direction of travel: the car heads from prev towards next
    (ax, ay), (bx, by) = waypoints[prev], waypoints[nxt]
    heading = math.radians(params["heading"])
    assert (bx - ax) * math.cos(heading) + (by - ay) * math.sin(heading) > 0, (
        "waypoints against the direction of travel", params["heading"])
    if params["distance_from_center"] > 0.05:
        left = _side(waypoints, prev, nxt, params["x"], params["y"]) > 0
        assert left == params["is_left_of_center"], ("is_left_of_center", params["x"],
                                                     params["y"], params["is_reversed"])
    return 1.0
"""
CCW = ("reinvent_base", "2022_april_open_ccw", "Singapore")
CW = ("2022_april_pro_cw", "Monaco", "Spain_track")


def hold_out_folder(tmp_path):
    return write_folder(tmp_path / "custom_files", reward="import math\n" + HOLD_OUT)


@pytest.mark.parametrize("world", [*CCW, *CW, "Straight_track"])
def test_the_hold_out_passes_on_every_lap_of_both_senses(tmp_path, world):
    track = Track.load(TRACKS, world)
    assert track.is_ccw == (world not in CW) or world == "Straight_track"
    settings = DeepRacerSettings(world=world, training={"alternateDrivingDirection": True})
    result = validate_custom_files(hold_out_folder(tmp_path), settings, TRACKS, budget_s=1.0)
    assert result.ok, [str(p) for p in result.problems]
    names = [s.name for s in result.scenarios]
    assert names == [*names[:6], *(f"{n} (reversed)" for n in names[:6])]


@pytest.mark.parametrize("world", ["reInvent2019_track_ccw", "reInvent2019_track_cw"])
def test_the_hold_out_passes_among_obstacles_on_reversed_laps(tmp_path, world):
    settings = DeepRacerSettings.model_validate(
        {
            "world": world,
            "raceType": "OBJECT_AVOIDANCE",
            "objectAvoidance": {"objectPositions": ["0.2,1", "0.5,-1", "0.8,1"]},
            "training": {"reverseDirection": True},
        }
    )
    result = validate_custom_files(hold_out_folder(tmp_path), settings, TRACKS, budget_s=1.0)
    assert result.ok, [str(p) for p in result.problems]
    assert all(s.name.endswith("(reversed)") for s in result.scenarios)
    sides = {tuple(s.steps[0]["objects_left_of_center"]) for s in result.scenarios}
    # lane 1 is the inner lane: on the right when a counter-clockwise track is reversed
    inner_left = world.endswith("_cw")
    assert sides == {(inner_left, not inner_left, inner_left)}


def test_reversed_laps_say_left_in_the_direction_of_travel():
    """The fault: left and right were swapped on reversed laps (the forward sense kept)."""
    track = Track.load(TRACKS, "reinvent_base")
    settings = DeepRacerSettings(training={"reverseDirection": True})
    by_name = {s.name: s for s in scenarios(track, settings, [(0.0, 1.0)])}
    left = by_name["left of centre (reversed)"]
    assert all(p["is_left_of_center"] and p["is_reversed"] for p in left.steps)
    assert not any(p["is_left_of_center"] for p in by_name["right of centre (reversed)"].steps)
    assert left.waypoints == track.waypoints()[::-1]
    assert len(by_name) == 6  # every offset, and only reversed


def test_an_open_track_counts_as_counter_clockwise():
    """simapp: `_is_ccw_ = True` for a track that is no loop, whatever its shape."""
    track = Track.load(TRACKS, "Straight_track")
    assert not track.is_loop and track.is_ccw and not track.reverse().is_ccw


def test_sim_time_is_the_simulator_clock():
    """Gazebo's clock in seconds: it does not restart at 0 with each episode."""
    laps = scenarios(Track.load(TRACKS, "reinvent_base"), DeepRacerSettings(), [(0.0, 1.0)])
    times = [p["sim_time"] for lap in laps for p in lap.steps]
    assert times[0] > FIRST_LAP_CLOCK_S
    assert all(later > earlier for earlier, later in itertools.pairwise(times))
