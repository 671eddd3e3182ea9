"""The trainer end to end on this machine: real donkeycar training on generated tubs.

Runs in the trainer's environment (.venv-trainer): TensorFlow and donkeycar are imported.
One small training run is shared by the tests that only read its results.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.old_archives import old_format_archive
from training.donkeycar.archive import create_archive
from training.donkeycar.sample_tub import write_sample_tub
from training.donkeycar.train import COMPLETE, LATEST, RUN_MANIFEST, main

FAST = ["--set", "MAX_EPOCHS=6", "--set", "BATCH_SIZE=32", "--set", "PRINT_MODEL_SUMMARY=False"]


@pytest.fixture(scope="module")
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
        ]
    )
    assert code == 0
    return tub, output / "r1"


def test_run_folder_holds_every_output_and_is_complete(trained) -> None:
    _, run = trained
    manifest = json.loads((run / RUN_MANIFEST).read_text())
    for name in ("pilot.tflite", "history.json", "loss.png"):
        assert (run / name).is_file() and name in manifest["outputs"]
    assert (run / "pilot.savedmodel" / "saved_model.pb").is_file()
    assert (run / COMPLETE).is_file()
    assert manifest["versions"]["donkeycar"] == "5.3.0"
    assert manifest["records"]["tubs"] == {"data": 600}
    assert manifest["records"]["training"] + manifest["records"]["validation"] == 600
    assert manifest["seconds"]["fit"] > 0 and manifest["seconds"]["fetch_extract"] >= 0
    latest = json.loads((run.parent / LATEST).read_text())
    assert latest["run_id"] == "r1"


def test_every_output_matches_its_recorded_checksum(trained) -> None:
    import hashlib

    _, run = trained
    manifest = json.loads((run / RUN_MANIFEST).read_text())
    for rel, digest in manifest["outputs"].items():
        assert hashlib.sha256((run / rel).read_bytes()).hexdigest() == digest


def test_tflite_model_loads_and_predicts(trained) -> None:
    import tensorflow as tf

    tub, run = trained
    interpreter = tf.lite.Interpreter(model_path=str(run / "pilot.tflite"))
    interpreter.allocate_tensors()
    [inp] = interpreter.get_input_details()
    image = (
        np.asarray(Image.open(tub / "images" / "0_cam_image_array_.jpg"), dtype=np.float32) / 255
    )
    interpreter.set_tensor(inp["index"], image[None].astype(inp["dtype"]))
    interpreter.invoke()
    outputs = [interpreter.get_tensor(o["index"]) for o in interpreter.get_output_details()]
    assert len(outputs) == 2 and all(np.isfinite(o).all() for o in outputs)


def test_lane_line_model_beats_the_constant_predictor(trained) -> None:
    _, run = trained
    manifest = json.loads((run / RUN_MANIFEST).read_text())
    history = json.loads((run / "history.json").read_text())
    assert manifest["best_val_loss"] == min(history["val_loss"])
    assert manifest["best_val_loss"] < 0.5 * manifest["constant_predictor_loss"]


def test_old_format_archive_trains(tmp_path: Path) -> None:
    tub = write_sample_tub(tmp_path / "data", records=120, seed=4)
    (tmp_path / "myconfig.py").write_text("MAX_EPOCHS = 1\nBATCH_SIZE = 16\n")
    old = old_format_archive(tub, tmp_path / "old.tar.gz", tmp_path / "myconfig.py")
    assert main(["--data", str(old), "--output", str(tmp_path / "out"), "--run-id", "old"]) == 0
    manifest = json.loads((tmp_path / "out" / "old" / RUN_MANIFEST).read_text())
    assert manifest["archive"] == "old format"
    history = json.loads((tmp_path / "out" / "old" / "history.json").read_text())
    assert len(history["loss"]) == 1  # myconfig.py from the archive was applied


def test_failed_run_never_replaces_the_good_model(trained, capsys) -> None:
    _, run = trained
    output = run.parent
    latest_before = (output / LATEST).read_text()
    code = main(
        [
            "--data",
            str(output.parent / "data.tar.zst"),
            "--output",
            str(output),
            "--run-id",
            "bad",
            "--set",
            "MAX_EPOCH=2",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "unknown donkeycar setting MAX_EPOCH (close: MAX_EPOCHS" in err
    assert not (output / "bad" / COMPLETE).exists()
    assert (output / LATEST).read_text() == latest_before


def test_reusing_a_complete_run_id_is_refused(trained, capsys) -> None:
    _, run = trained
    code = main(["--data", "unused", "--output", str(run.parent), "--run-id", "r1"])
    assert code == 1 and "already exists" in capsys.readouterr().err


def test_missing_archive_exits_non_zero_with_the_url(tmp_path: Path, capsys) -> None:
    code = main(["--data", str(tmp_path / "nope.tar.zst"), "--output", str(tmp_path / "out")])
    assert code == 1
    assert "nope.tar.zst" in capsys.readouterr().err
    assert not list((tmp_path / "out").rglob(COMPLETE))


def test_bad_records_need_skip_bad(tmp_path: Path, capsys) -> None:
    tub = write_sample_tub(tmp_path / "data", records=80, seed=5)
    (tub / "images" / "7_cam_image_array_.jpg").unlink()
    old = old_format_archive(tub, tmp_path / "old.tar.gz")
    args = ["--data", str(old), "--output", str(tmp_path / "out"), "--set", "MAX_EPOCHS=1"]
    assert main(args) == 1
    assert "record 7: image file missing" in capsys.readouterr().err
    assert main([*args, "--skip-bad", "--run-id", "skip"]) == 0
    manifest = json.loads((tmp_path / "out" / "skip" / RUN_MANIFEST).read_text())
    assert manifest["records"]["skipped"] == 1 and manifest["records"]["tubs"] == {"data": 79}
