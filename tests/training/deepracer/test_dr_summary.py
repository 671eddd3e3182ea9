"""`trackday dr summary`: one line per run, from its services and its metrics."""

from __future__ import annotations

from datetime import UTC, datetime

from rich.console import Console

from tests.training.deepracer.dr_data import write_run
from trackday.dr_status import ServiceStatus
from trackday.dr_watch import Progress, read_progress, render, run_lines, sparkline

NOW = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)


def service(run_id, job, name, replicas, running, prefix, created):
    return ServiceStatus(run_id, job, name, replicas, running, (), prefix, created)


def test_one_line_per_run_with_its_progress(tmp_path):
    write_run(tmp_path, "run-a")
    services = [
        service(
            "3",
            "training",
            "trackday-dr-3-trainer",
            1,
            1,
            "run-a",
            "2026-11-30T15:30:00.123456789Z",
        ),
        service(
            "3", "training", "trackday-dr-3-simulation", 2, 2, "run-a", "2026-11-30T15:30:01.5Z"
        ),
        service("4", "evaluation", "trackday-dr-eval-4-simulation", 1, 0, "run-b", ""),
    ]
    lines = run_lines(services, lambda prefix: read_progress(str(tmp_path), prefix), NOW)
    assert [(line.run_id, line.job, line.running, line.replicas) for line in lines] == [
        ("3", "training", 3, 3),
        ("4", "evaluation", 0, 1),
    ]
    first = lines[0]
    assert round(first.elapsed_s) == 2.5 * 3600 and lines[1].elapsed_s is None
    progress = first.progress
    assert progress is not None and progress.iteration >= 5
    assert progress.best_progress == 100.0  # the generated run laps from iteration 4
    assert len(progress.rewards) >= 5 and progress.rewards[-1] > progress.rewards[0]
    console = Console(width=160, record=True)
    console.print(render(lines))
    text = console.export_text()
    assert "run-a" in text and "2h29m" in text and "100.0%" in text and "█" in text


def test_a_run_without_metrics_yet_shows_dashes(tmp_path):
    assert read_progress(str(tmp_path), "nothing-yet") is None
    assert sparkline((1.0, 1.0)) == "▁▁" and sparkline(()) == ""
    assert sparkline((0.0, 5.0, 10.0)) == "▁▅█"
    line = run_lines([service("1", "training", "t", 1, 1, "p", "")], lambda _: None, NOW)
    console = Console(width=160, record=True)
    console.print(render(line))
    assert "0h" not in console.export_text()
    assert Progress(1, None, ()).best_progress is None
