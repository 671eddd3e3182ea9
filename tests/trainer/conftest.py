"""The trainer's shared run: one small training, read by the tests of several modules."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.donkeycar.archive import create_archive
from training.donkeycar.sample_tub import write_sample_tub
from training.donkeycar.train import main

FAST = ["--set", "MAX_EPOCHS=6", "--set", "BATCH_SIZE=32", "--set", "PRINT_MODEL_SUMMARY=False"]


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A lane-line tub, archived, trained into a file:// output; (tub, run folder)."""
    root = tmp_path_factory.mktemp("train")
    tub = write_sample_tub(root / "data", records=600, seed=3)
    create_archive([tub], root / "data.tar.zst")
    output = root / "models"
    code = main(
        [
            "--data",
            str(root / "data.tar.zst"),
            "--output",
            f"file://{output}",
            "--run-id",
            "r1",
            *FAST,
            "--set",
            "CACHE_IMAGES=False",  # read by donkeycar with a default, not in its template
            "--comment",
            "first lap",
        ]
    )
    assert code == 0
    return tub, output / "r1"
