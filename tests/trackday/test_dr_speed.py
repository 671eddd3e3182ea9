"""`trackday dr status` / `summary`: each simulation worker's speed from its log lines."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from rich.console import Console

from tests.training.deepracer.test_sim_speed import worker_log
from trackday import dr_speed
from trackday.dr_commands import status_table
from trackday.dr_status import ServiceStatus
from trackday.dr_watch import render, run_lines
from training.deepracer.services import SIMULATION_ROLE, TRAINER_ROLE

TRAINER = ServiceStatus(
    "3", "training", "trackday-dr-3-trainer", 1, 1, ("1: running on n",), "run-a", "", TRAINER_ROLE
)
SIMULATION = ServiceStatus(
    "3", "training", "trackday-dr-3-simulation", 3, 3, (), "run-a", "", SIMULATION_ROLE
)
LOGS = {1: worker_log(0.64, 9.5, 30), 2: worker_log(1.0, 15.0, 30), 3: ["Starting gzserver"]}


def text(table) -> str:
    console = Console(width=200, record=True)
    console.print(table)
    return console.export_text()


def speeds():
    return {SIMULATION.name: dr_speed.worker_speeds(SIMULATION.replicas, LOGS.get)}


def test_each_worker_read_on_its_own():
    read = []
    found = dr_speed.worker_speeds(3, lambda worker: read.append(worker) or LOGS[worker])
    assert read == [1, 2, 3] and found[3] is None
    assert dr_speed.describe(found).splitlines() == [
        "1: RTF 0.64, 9.5 steps/s",
        "2: RTF 1.00, 15.0 steps/s",
        "3: -",
    ]
    assert dr_speed.worker_speeds(1, lambda _: None) == {1: None}  # a log the engine withholds
    assert dr_speed.describe({}) == "-"


def test_status_shows_the_simulation_workers_speeds():
    shown = text(status_table([TRAINER, SIMULATION], speeds()))
    assert "simulation speed" in shown
    assert "1: RTF 0.64, 9.5 steps/s" in shown and "2: RTF 1.00, 15.0 steps/s" in shown


def test_summary_shows_them_on_the_run_line():
    lines = run_lines(
        [TRAINER, SIMULATION], lambda _: None, datetime(2026, 11, 30, tzinfo=UTC), speeds()
    )
    assert len(lines) == 1 and lines[0].speeds is not None and lines[0].speeds[3] is None
    shown = text(render(lines))
    assert "1: RTF 0.64, 9.5 steps/s" in shown and "3: -" in shown


# An engine on which the run's services are gone by the time their logs are read.
GONE = SimpleNamespace(api=SimpleNamespace(services=lambda filters: []))


def test_services_gone_or_unlabelled_have_no_speeds():
    unlabelled = ServiceStatus("?", "?", "x-simulation", 1, 1, (), "", "", SIMULATION_ROLE)
    assert dr_speed.service_speeds(GONE, [TRAINER, SIMULATION, unlabelled]) == {}
