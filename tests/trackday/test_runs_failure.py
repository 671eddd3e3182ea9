"""`runs.failure_recorded`: a submit that fails leaves FAILED.txt, unless the trainer left its
own marker (COMPLETE, FAILED.txt, or INTERRUPTED.txt when a spot notice stopped it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from trackday import runs
from training.donkeycar.train import FAILED, INTERRUPTED


def _fail_in(run: Path) -> None:
    with pytest.raises(ConnectionError), runs.failure_recorded(str(run)):
        raise ConnectionError("the manager went away")


def test_a_failed_submit_marks_a_run_the_trainer_left_unmarked(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "transfer.keras").write_text("input")
    _fail_in(run)
    assert (run / FAILED).read_text() == "ConnectionError: the manager went away\n"


def test_an_interrupted_run_is_left_as_the_trainer_marked_it(tmp_path: Path) -> None:
    """Its node runs it again after the spot notice: it must not read as failed."""
    run = tmp_path / "run"
    run.mkdir()
    (run / INTERRUPTED).write_text("Interrupted: stopped by SIGTERM\n")
    _fail_in(run)
    assert not (run / FAILED).exists()
