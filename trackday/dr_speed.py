"""Each simulation worker's speed (real-time factor, steps per second) for `trackday dr status`
and `trackday dr summary`, read from the workers' recent log lines
(training/deepracer/sim_speed.py says which lines)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import docker
import docker.errors

from trackday import dr_status
from trackday.errors import RunError
from training.deepracer.services import SIMULATION_ROLE
from training.deepracer.sim_speed import SimSpeed, speed

# A worker logs one step line per step, 10-20 a second: this many lines hold its last half
# minute or so, enough for a steady number without reading the whole log over SSH.
TAIL = 400


def worker_speeds(
    replicas: int, read_lines: Callable[[int], list[str] | None]
) -> dict[int, SimSpeed | None]:
    """Workers 1..replicas (their task slots), each from `read_lines(worker)` (None: its log
    cannot be read)."""
    speeds = {}
    for worker in range(1, replicas + 1):
        lines = read_lines(worker)
        speeds[worker] = speed(lines) if lines is not None else None
    return speeds


def log_reader(
    client: docker.DockerClient, service: dr_status.ServiceStatus, tail: int = TAIL
) -> Callable[[int], list[str] | None]:
    """Reads one worker's last `tail` lines from the engine. A log the engine cannot give
    (a log driver that only sends, as awslogs, or a task gone) reads as None."""
    found = dr_status.service_of(client, int(service.run_id), service.job, SIMULATION_ROLE)

    def read(worker: int) -> list[str] | None:
        lines: list[str] = []
        try:
            dr_status.logs(client, found, worker, False, lines.append, tail=tail)
        except (RunError, docker.errors.APIError):
            return None
        return lines

    return read


def service_speeds(
    client: docker.DockerClient, services: list[dr_status.ServiceStatus]
) -> dict[str, dict[int, SimSpeed | None]]:
    """The workers' speeds of every simulation service, by service name; a service removed
    meanwhile (or not labelled with a run id) has none."""
    speeds = {}
    for service in services:
        if service.role != SIMULATION_ROLE or not service.run_id.isdigit():
            continue
        try:
            speeds[service.name] = worker_speeds(service.replicas, log_reader(client, service))
        except RunError:
            continue
    return speeds


def describe(speeds: Mapping[int, SimSpeed | None]) -> str:
    """One line per worker; `-` for one with no step logged yet."""
    return (
        "\n".join(
            f"{worker}: {found.describe() if found else '-'}"
            for worker, found in sorted(speeds.items())
        )
        or "-"
    )
