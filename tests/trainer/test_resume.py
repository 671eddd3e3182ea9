"""A run stopped by SIGTERM (a spot interruption) keeps its best model so far, and the same
run id run again starts from it (training/donkeycar/checkpoint.py), with donkeycar's own
training: the checkpoint is what its ModelCheckpoint saved, loaded back as a transfer model."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from training import storage
from training.donkeycar import train
from training.donkeycar.archive import create_archive
from training.donkeycar.checkpoint import CHECKPOINT_FOLDER, CHECKPOINT_RECORD
from training.donkeycar.sample_tub import write_sample_tub
from training.donkeycar.train import COMPLETE, INTERRUPTED, LATEST, RUN_MANIFEST, main

SMALL = ["--set", "MAX_EPOCHS=2", "--set", "BATCH_SIZE=16", "--set", "PRINT_MODEL_SUMMARY=False"]


def test_an_interrupted_run_run_again_starts_from_its_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tub = write_sample_tub(tmp_path / "data", records=120, seed=5)
    create_archive([tub], tmp_path / "data.tar.zst")
    output = tmp_path / "out"
    args = ["--data", str(tmp_path / "data.tar.zst"), "--output", str(output), "--run-id", "spot"]

    def report_until_the_signal(history: dict, path: Path) -> None:
        """The signal comes once donkeycar has fitted and saved its model (a real SIGTERM)."""
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(60)  # never reached: the handler raises as soon as the signal is handled
        raise AssertionError("SIGTERM did not stop the run")

    monkeypatch.setattr(train, "plot_loss", report_until_the_signal)
    assert main([*args, *SMALL]) == 128 + signal.SIGTERM
    run = output / "spot"
    assert (run / INTERRUPTED).is_file()
    assert not (run / COMPLETE).exists() and not (output / LATEST).exists()
    kept = json.loads((run / CHECKPOINT_RECORD).read_text())["model"]
    model = Path(kept).name
    assert Path(kept).parent == run / CHECKPOINT_FOLDER
    saved = [p for p in (run / CHECKPOINT_FOLDER).rglob("*") if p.is_file()]
    assert saved and all(
        p.name.endswith(storage.SIDECAR_SUFFIX) or Path(f"{p}{storage.SIDECAR_SUFFIX}").is_file()
        for p in saved
    )
    monkeypatch.undo()

    assert main([*args, *SMALL]) == 0
    manifest = json.loads((run / RUN_MANIFEST).read_text())
    assert manifest["resumed_from"] == kept
    assert manifest["transfer"]["source"] == kept and manifest["transfer"]["model"] == model
    # donkeycar's own record: the model was trained on from the checkpoint (its transfer).
    [entry] = json.loads((run / "database.json").read_text())
    assert entry["Transfer"] == model
    assert (run / COMPLETE).is_file()
    assert json.loads((output / LATEST).read_text())["run_id"] == "spot"


@pytest.mark.parametrize(
    "named", ["/elsewhere/pilot.keras", "{run}/checkpoint/../../x.keras", "{run}/checkpoint/"]
)
def test_a_checkpoint_record_naming_another_place_is_refused(
    tmp_path: Path, named: str, capsys
) -> None:
    """CHECKPOINT.json is read back from the bucket: it names a model of this run or nothing."""
    run = tmp_path / "out" / "r"
    run.mkdir(parents=True)
    (run / CHECKPOINT_RECORD).write_text(json.dumps({"model": named.format(run=run)}))
    assert main(["--data", "unused", "--output", str(tmp_path / "out"), "--run-id", "r"]) == 1
    assert "not a model in checkpoint/ of this run" in capsys.readouterr().err
