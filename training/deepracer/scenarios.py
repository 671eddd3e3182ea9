"""The params the simulator passes to `reward_function(params)`, by driving a real track.

A reward function that only ever saw the centre line can still divide by zero off track or
index past the last waypoint on a reversed lap. So the check drives every lap a training run
can produce: on the centre line, off centre, near the edges, off track, crooked, and, where
the race has objects, among obstacles or bot cars and crashed into them; each in the sense
training drives (`training.reverseDirection`), or in both where it alternates
(`alternateDrivingDirection`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from training.deepracer.settings import DeepRacerSettings, RaceType
from training.deepracer.track import Track, nearest_on_polyline

STEPS_PER_SECOND = 15  # the simulator steps at the camera's frame rate
# `sim_time` is Gazebo's clock (simapp v6.0.4 rollout_agent_ctrl.py: the /clock topic in
# seconds), which runs from the simulator's start, not from the episode's: the first lap
# starts well after 0 and each lap goes on where the one before ended.
FIRST_LAP_CLOCK_S = 37.5
RESET_S = 2.0  # the car is placed at its next start between episodes
MAX_STEPS_PER_LAP = 150
# Wheel positions relative to the point the simulator tracks (front of the car), metres.
_WHEELS = ((-0.03, 0.08), (-0.03, -0.08), (-0.19, 0.08), (-0.19, -0.08))


@dataclass(frozen=True)
class TrackObject:
    """An obstacle or bot car: where it is and how it moves."""

    x: float
    y: float
    speed: float = 0.0
    heading: float = 0.0


@dataclass
class Scenario:
    """One lap of steps; `waypoints` is shared by every step (sent once to the checker)."""

    name: str
    waypoints: list[tuple[float, float]]
    steps: list[dict] = field(default_factory=list)
    track: Track | None = None


def _left(direction: np.ndarray) -> np.ndarray:
    return np.array([-direction[1], direction[0]])


def _lane_point(track: Track, along: float, inner: bool) -> tuple[np.ndarray, np.ndarray]:
    """A point in the middle of the inner or outer lane, and the travel direction there."""
    center, direction, _ = track.point_at(along)
    border = nearest_on_polyline(track.inner if inner else track.outer, center)
    return (center + border) / 2, direction


def place_objects(track: Track, settings: DeepRacerSettings) -> list[TrackObject]:
    """Obstacles or bot cars where the race type's settings put them (evenly if random)."""
    if settings.race_type == RaceType.OBJECT_AVOIDANCE:
        oa = settings.object_avoidance
        spots = [
            (float(p), int(lane) == 1)
            for p, lane in (position.split(",") for position in oa.object_positions)
        ]
        if not spots:
            count = oa.number_of_obstacles
            spots = [((i + 1) / (count + 1), i % 2 == 0) for i in range(count)]
        speed = 0.0
    elif settings.race_type == RaceType.HEAD_TO_BOT:
        count = settings.head_to_bot.number_of_bot_cars
        spots = [((i + 1) / (count + 1), i % 2 == 0) for i in range(count)]
        speed = settings.head_to_bot.bot_car_speed
    elif settings.race_type == RaceType.HEAD_TO_MODEL:
        spots, speed = [(0.5, True)], 1.0
    else:
        return []
    placed = []
    for fraction, inner in spots:
        point, direction = _lane_point(track, fraction * track.length, inner)
        heading = math.atan2(direction[1], direction[0]) if speed else 0.0
        placed.append(TrackObject(float(point[0]), float(point[1]), speed, heading))
    return placed


@dataclass(frozen=True)
class _Measured:
    """What does not change from step to step about the objects on a track."""

    objects: list[TrackObject]
    locations: np.ndarray
    along: list[float]
    from_center: list[float]
    left: list[bool]


def _measure(track: Track, objects: list[TrackObject]) -> _Measured | None:
    if not objects:
        return None
    locations = np.array([[o.x, o.y] for o in objects])
    projections = track.project_many(locations)
    return _Measured(
        objects,
        locations,
        [p.along for p in projections],
        [p.distance for p in projections],
        [track.is_left_of_center(p) for p in locations],
    )


def _object_params(
    measured: _Measured | None, point: np.ndarray, car_along: float, heading: float
) -> dict:
    if measured is None:
        return {}
    distances = measured.along
    order = np.argsort(distances)
    ahead = [i for i in order if distances[i] >= car_along]
    next_index = int(ahead[0] if ahead else order[0])
    behind = [i for i in order if distances[i] < car_along]
    prev_index = int(behind[-1] if behind else order[-1])
    to_next = measured.locations[next_index] - point
    bearing = math.degrees(math.atan2(to_next[1], to_next[0])) - heading
    bearing = (bearing + 180) % 360 - 180
    in_camera = bool(np.linalg.norm(to_next) < 3.0 and abs(bearing) < 60)
    return {
        "closest_objects": [prev_index, next_index],
        "objects_location": [[float(x), float(y)] for x, y in measured.locations],
        "objects_left_of_center": list(measured.left),
        "objects_speed": [o.speed for o in measured.objects],
        "objects_heading": [o.heading for o in measured.objects],
        "objects_distance_from_center": list(measured.from_center),
        "objects_distance": list(distances),
        "object_in_camera": in_camera,
    }


def _car_params(
    track: Track,
    objects: _Measured | None,
    *,
    along: float,
    lateral: float,
    heading_offset: float,
    action: tuple[float, float],
    step: int,
    lap_fraction: float,
    clock: float,
    crashed: bool = False,
) -> dict:
    """Params of one step: the car `lateral` metres left of the centre line at `along`."""
    center, direction, _ = track.point_at(along)
    point = center + _left(direction) * lateral
    projection = track.project(point)
    heading = math.degrees(math.atan2(direction[1], direction[0])) + heading_offset
    heading = (heading + 180) % 360 - 180
    yaw = math.radians(heading)
    forward = np.array([math.cos(yaw), math.sin(yaw)])
    wheels = np.array([point + forward * dx + _left(forward) * dy for dx, dy in _WHEELS])
    on_track = track.on_track(wheels)
    steering, speed = action
    last = len(track.center) - 1
    params = {
        "all_wheels_on_track": all(on_track),
        "x": float(point[0]),
        "y": float(point[1]),
        "heading": heading,
        "distance_from_center": projection.distance,
        "projection_distance": projection.along,
        "progress": 100.0 * lap_fraction,
        "steps": step,
        "speed": float(speed),
        "steering_angle": float(steering),
        "track_width": projection.track_width,
        "track_length": track.length,
        "closest_waypoints": [projection.segment, min(projection.segment + 1, last)],
        "is_left_of_center": track.is_left_of_center(point),
        "is_reversed": track.reversed,
        "closest_objects": [0, 0],
        "objects_location": [],
        "objects_left_of_center": [],
        "object_in_camera": False,
        "objects_speed": [],
        "objects_heading": [],
        "objects_distance_from_center": [],
        "objects_distance": [],
        "is_crashed": crashed,
        "is_offtrack": not any(on_track),
        "sim_time": clock + step / STEPS_PER_SECOND,
    }
    params.update(_object_params(objects, point, projection.along, heading))
    return params


def _lap(
    track: Track,
    objects: list[TrackObject],
    actions: list[tuple[float, float]],
    name: str,
    clock: float,
    lateral_share: float = 0.0,
    extra: float = 0.0,
    heading_offset: float = 0.0,
    alternate: bool = False,
) -> Scenario:
    """One lap at a fixed share of the half width from the centre (+ left), `extra` beyond it."""
    scenario = Scenario(name, track.waypoints(), track=track)
    measured = _measure(track, objects)
    count = min(len(track.center) - 1, MAX_STEPS_PER_LAP)
    for i in range(count):
        along = track.length * i / count
        center, _, _ = track.point_at(along)
        half_width = track.project(center).track_width / 2
        sign = -1.0 if alternate and i % 2 else 1.0
        scenario.steps.append(
            _car_params(
                track,
                measured,
                along=along,
                lateral=sign * (lateral_share * half_width + extra),
                heading_offset=sign * heading_offset,
                action=actions[i % len(actions)],
                step=i + 1,
                lap_fraction=(i + 1) / count,
                clock=clock,
            )
        )
    return scenario


def _crashes(
    track: Track, objects: list[TrackObject], actions: list[tuple[float, float]], clock: float
) -> Scenario:
    scenario = Scenario("crashed into an object", track.waypoints(), track=track)
    measured = _measure(track, objects)
    for i, obj in enumerate(objects):
        location = np.array([obj.x, obj.y])
        along = max(track.project(location).along - 0.15, 0.0)
        center, direction, _ = track.point_at(along)
        lateral = float(np.dot(location - center, _left(direction)))
        scenario.steps.append(
            _car_params(
                track,
                measured,
                along=along,
                lateral=lateral,
                heading_offset=0.0,
                action=actions[i % len(actions)],
                step=10 * (i + 1),
                lap_fraction=along / track.length,
                clock=clock,
                crashed=True,
            )
        )
    return scenario


# The laps of one sense: (name, lateral share of the half width, metres beyond, heading
# offset in degrees, alternating sides step by step).
_LAPS = (
    ("centre line", 0.0, 0.0, 0.0, False),
    ("left of centre", 0.5, 0.0, 0.0, False),
    ("right of centre", -0.5, 0.0, 0.0, False),
    ("near the edges", 0.75, 0.0, 0.0, True),
    ("off track", 1.0, 0.3, 0.0, True),
    ("crooked heading", 0.0, 0.0, 45.0, True),
)


def driven_senses(settings: DeepRacerSettings) -> tuple[bool, ...]:
    """Which senses training drives, as `reversed` flags: REVERSE_DIR sets the first
    episode's, and ALTERNATE_DRIVING_DIRECTION flips it every episode (simapp v6.0.4
    rollout_agent_ctrl.py)."""
    training = settings.training
    first = training.reverse_direction
    return (first, not first) if training.alternate_driving_direction else (first,)


def scenarios(
    track: Track, settings: DeepRacerSettings, actions: list[tuple[float, float]]
) -> list[Scenario]:
    """Every lap the reward function must survive, for this track, race type and the
    senses training drives; `sim_time` runs on from lap to lap, as Gazebo's clock does."""
    laps: list[Scenario] = []
    clock = FIRST_LAP_CLOCK_S
    for reverse in driven_senses(settings):
        driven = track.reverse() if reverse else track
        objects = place_objects(driven, settings)
        suffix = " (reversed)" if reverse else ""
        for name, share, extra, heading, alternate in _LAPS:
            laps.append(
                _lap(
                    driven, objects, actions, name + suffix, clock, share, extra, heading, alternate
                )
            )
            clock = laps[-1].steps[-1]["sim_time"] + RESET_S
        if objects:
            laps.append(_crashes(driven, objects, actions, clock))
            laps[-1].name += suffix
            clock = laps[-1].steps[-1]["sim_time"] + RESET_S
    return laps
