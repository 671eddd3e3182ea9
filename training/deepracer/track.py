"""A DeepRacer track's geometry, loaded from the simulator's route file (`<world>.npy`).

Each row is a waypoint: centre x, y, inner border x, y, outer border x, y (metres). The
measurements here follow the simulator's: progress along the centre line, distance to it,
track width between the borders next to the car, left of centre relative to the driving
direction, so generated reward-function params look like the ones training passes.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np


class TrackError(ValueError):
    """A track file is missing or malformed; the message says which and what to do."""


@dataclass(frozen=True)
class Projection:
    """Where a point lies relative to the centre line."""

    along: float  # metres along the centre line from waypoint 0
    segment: int  # index of the waypoint before the point
    distance: float  # metres from the centre line
    track_width: float  # metres between the borders at that place


@dataclass(frozen=True)
class Track:
    name: str
    center: np.ndarray  # (N, 2); a closed track repeats its first point last
    inner: np.ndarray
    outer: np.ndarray
    reversed: bool = False
    forward_is_ccw: bool = True  # the sense of the route file's own order

    @classmethod
    def load(cls, tracks_dir: Path, world: str) -> Track:
        path = Path(tracks_dir) / f"{world}.npy"
        if not path.is_file():
            known = sorted(p.stem for p in Path(tracks_dir).glob("*.npy"))
            hint = difflib.get_close_matches(world, known, n=3)
            near = f" (did you mean {', '.join(hint)}?)" if hint else ""
            raise TrackError(
                f"no track file {path}{near}: set the world to a track in {tracks_dir} "
                "or point --tracks-dir at the folder of the simulator's routes"
            )
        try:
            rows = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise TrackError(f"{path} is not a NumPy track file: {error}") from error
        if rows.ndim != 2 or rows.shape[1] < 6 or rows.shape[0] < 3:
            raise TrackError(f"{path}: expected an (N, 6) array of waypoints, got {rows.shape}")
        if not np.isfinite(rows[:, :6]).all():
            raise TrackError(f"{path}: waypoints contain NaN or infinite values")
        rows = _drop_repeated_points(rows[:, :6].astype(float))
        center = rows[:, 0:2]
        # simapp v6.0.4 bundle/markov/track_geom/track_data.py: a loop's sense is its centre
        # line's (LinearRing.is_ccw); an open track counts as counter-clockwise.
        loop = bool(np.allclose(center[0], center[-1]))
        forward_is_ccw = _signed_area(center) > 0 if loop else True
        return cls(world, center, rows[:, 2:4], rows[:, 4:6], False, forward_is_ccw)

    def reverse(self) -> Track:
        """The same track driven the other way round, as REVERSE_DIR makes the simulator do."""
        return Track(
            self.name,
            self.center[::-1].copy(),
            self.inner[::-1].copy(),
            self.outer[::-1].copy(),
            not self.reversed,
            self.forward_is_ccw,
        )

    @property
    def is_loop(self) -> bool:
        return bool(np.allclose(self.center[0], self.center[-1]))

    @cached_property
    def _segments(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        starts = self.center[:-1]
        deltas = self.center[1:] - starts
        return starts, deltas, np.einsum("ij,ij->i", deltas, deltas)

    @cached_property
    def cumulative(self) -> np.ndarray:
        """Metres along the centre line at each waypoint."""
        lengths = np.linalg.norm(np.diff(self.center, axis=0), axis=1)
        return np.concatenate([[0.0], np.cumsum(lengths)])

    @cached_property
    def widths(self) -> np.ndarray:
        """Metres between the borders at each waypoint."""
        return np.linalg.norm(self.inner - self.outer, axis=1)

    @property
    def length(self) -> float:
        return float(self.cumulative[-1])

    def waypoints(self) -> list[tuple[float, float]]:
        return [(float(x), float(y)) for x, y in self.center]

    def point_at(self, along: float) -> tuple[np.ndarray, np.ndarray, int]:
        """Centre point, unit direction of travel and segment index at `along` metres."""
        cumulative = self.cumulative
        along = along % self.length if self.is_loop else min(max(along, 0.0), self.length)
        segment = int(
            np.clip(np.searchsorted(cumulative, along, side="right") - 1, 0, len(self.center) - 2)
        )
        starts, deltas, _ = self._segments
        seg_len = np.linalg.norm(deltas[segment])
        t = (along - cumulative[segment]) / seg_len
        return starts[segment] + t * deltas[segment], deltas[segment] / seg_len, segment

    def project_many(self, points: np.ndarray) -> list[Projection]:
        """Nearest place on the centre line of each of `points` (k, 2), in one pass."""
        starts, deltas, seg_len2 = self._segments
        relative = points[:, None, :] - starts[None, :, :]
        t = np.clip(np.einsum("kij,ij->ki", relative, deltas) / seg_len2, 0.0, 1.0)
        offsets = relative - t[:, :, None] * deltas[None, :, :]
        distances = np.linalg.norm(offsets, axis=2)
        segments = np.argmin(distances, axis=1)
        projections = []
        for k, segment in enumerate(segments):
            share = t[k, segment]
            width = (1 - share) * self.widths[segment] + share * self.widths[segment + 1]
            along = self.cumulative[segment] + share * np.sqrt(seg_len2[segment])
            projections.append(
                Projection(float(along), int(segment), float(distances[k, segment]), float(width))
            )
        return projections

    def project(self, point: np.ndarray) -> Projection:
        return self.project_many(np.asarray(point, dtype=float)[None, :])[0]

    @property
    def is_ccw(self) -> bool:
        """The sense the car drives in: the track's own, flipped by REVERSE_DIR (simapp
        v6.0.4 track_data.py: `is_ccw = _is_ccw_ ^ _reverse_dir_`)."""
        return self.forward_is_ccw ^ self.reversed

    def is_left_of_center(self, point: np.ndarray) -> bool:
        """The simulator's rule (simapp v6.0.4 bundle/markov/agent_ctrl/utils.py): nearer the
        inner border, flipped where the car drives clockwise, so that on reversed laps too it
        is left of the centre line as seen in the direction of travel."""
        nearer_inner = _distance_to_polyline(self.inner, point) < _distance_to_polyline(
            self.outer, point
        )
        return bool(nearer_inner ^ (not self.is_ccw))

    def on_track(self, points: np.ndarray) -> list[bool]:
        """For each point: within half the track width of the centre line."""
        return [p.distance <= p.track_width / 2 for p in self.project_many(points)]


def _drop_repeated_points(rows: np.ndarray) -> np.ndarray:
    """Consecutive identical centre points make zero-length segments; the simulator drops them."""
    keep = np.ones(len(rows), dtype=bool)
    keep[1:] = np.linalg.norm(np.diff(rows[:, 0:2], axis=0), axis=1) > 1e-9
    if np.allclose(rows[0, 0:2], rows[-1, 0:2]) and not keep[-1]:
        keep[-1] = True
        keep[-2] = False
    return rows[keep]


def _signed_area(ring: np.ndarray) -> float:
    x, y = ring[:, 0], ring[:, 1]
    return float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]) / 2)


def nearest_on_polyline(line: np.ndarray, point: np.ndarray) -> np.ndarray:
    """The point of the polyline `line` nearest to `point`."""
    starts, deltas = line[:-1], np.diff(line, axis=0)
    seg_len2 = np.maximum(np.einsum("ij,ij->i", deltas, deltas), 1e-18)
    t = np.clip(np.einsum("ij,ij->i", point - starts, deltas) / seg_len2, 0.0, 1.0)
    nearest = starts + t[:, None] * deltas
    return nearest[int(np.argmin(np.linalg.norm(nearest - point, axis=1)))]


def _distance_to_polyline(line: np.ndarray, point: np.ndarray) -> float:
    return float(np.linalg.norm(nearest_on_polyline(line, point) - point))


# Where the simulator image keeps its route files (colcon install of its environment package).
IMAGE_ROUTES = (
    "/opt/amazon/install/deepracer_simulation_environment/share/"
    "deepracer_simulation_environment/routes"
)


def extract_from_image(image: str, dest: Path) -> list[Path]:
    """Copy the track files out of the simulator image (`docker create` + `docker cp`)."""
    import subprocess

    def docker(*args: str) -> str:
        done = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
        if done.returncode:
            raise TrackError(
                f"docker {args[0]} failed: {done.stderr.strip()}; is the image "
                f"{image} present (docker pull {image}) and Docker running?"
            )
        return done.stdout.strip()

    container = docker("create", image, "true")
    try:
        dest.mkdir(parents=True, exist_ok=True)
        docker("cp", f"{container}:{IMAGE_ROUTES}/.", str(dest))
    finally:
        subprocess.run(["docker", "rm", container], capture_output=True, check=False)
    found = sorted(dest.glob("*.npy"))
    if not found:
        raise TrackError(f"{image} has no track files under {IMAGE_ROUTES}")
    return found
