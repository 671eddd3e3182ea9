"""The trainer end to end on this machine: real donkeycar training on generated tubs.

Runs in the trainer's environment (.venv-trainer): TensorFlow and donkeycar are imported.
One small training run (conftest.py) is shared by the tests that only read its results.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.old_archives import old_format_archive
from training.donkeycar import train
from training.donkeycar.sample_tub import write_sample_tub
from training.donkeycar.train import (
    COMPLETE,
    FAILED,
    INTERRUPTED,
    LATEST,
    RUN_MANIFEST,
    main,
)

# donkeycar's PilotDatabase.generate_model_name: pilot_<yy-mm-dd>_<n>.<ext>, the extension
# per version (5.3.0 .savedmodel, 5.4.0 .keras).
MODEL_NAME = re.compile(r"^pilot_\d\d-\d\d-\d\d_0\.(savedmodel|keras)$")


def test_run_folder_holds_every_output_and_is_complete(trained) -> None:
    _, run = trained
    manifest = json.loads((run / RUN_MANIFEST).read_text())
    import donkeycar

    assert MODEL_NAME.match(manifest["model"]), manifest["model"]
    assert manifest["tflite"] == manifest["model"].rsplit(".", 1)[0] + ".tflite"
    for name in (manifest["tflite"], "history.json", "loss.png", "database.json"):
        assert (run / name).is_file() and name in manifest["outputs"]
    assert any(rel.startswith(manifest["model"]) for rel in manifest["outputs"])
    assert (run / COMPLETE).is_file()
    assert manifest["versions"]["donkeycar"] == donkeycar.__version__
    assert manifest["overrides"]["CACHE_IMAGES"] == "False"
    assert manifest["records"]["tubs"] == {"data": 600}
    assert manifest["records"]["training"] + manifest["records"]["validation"] == 600
    assert manifest["seconds"]["fit"] > 0 and manifest["seconds"]["fetch_extract"] >= 0
    latest = json.loads((run.parent / LATEST).read_text())
    assert latest["run_id"] == "r1"


def test_database_json_is_donkeycars_own_record(trained) -> None:
    """`donkey models` and 5.4.0's config update read it: kept as donkeycar wrote it."""
    _, run = trained
    manifest = json.loads((run / RUN_MANIFEST).read_text())
    [entry] = json.loads((run / "database.json").read_text())
    assert entry["Name"] + "." + manifest["model"].rsplit(".", 1)[1] == manifest["model"]
    assert entry["Type"] == "linear" and entry["Comment"] == "first lap"


def test_tensorboard_logs_are_kept_where_donkeycar_writes_them(trained) -> None:
    """5.4.0's KerasPilot.train writes TensorBoard logs under <models>/logs/; 5.3.0 none."""
    import donkeycar

    _, run = trained
    logs = [rel for rel in json.loads((run / RUN_MANIFEST).read_text())["outputs"]]
    logs = [rel for rel in logs if rel.startswith("logs/")]
    assert bool(logs) == (donkeycar.__version__ != "5.3.0")


def test_every_output_matches_its_recorded_checksum(trained) -> None:
    import hashlib

    _, run = trained
    manifest = json.loads((run / RUN_MANIFEST).read_text())
    for rel, digest in manifest["outputs"].items():
        assert hashlib.sha256((run / rel).read_bytes()).hexdigest() == digest


def test_tflite_model_loads_and_predicts(trained) -> None:
    import tensorflow as tf

    tub, run = trained
    manifest = json.loads((run / RUN_MANIFEST).read_text())
    interpreter = tf.lite.Interpreter(model_path=str(run / manifest["tflite"]))
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


def test_movie_shows_the_validation_frames_with_both_steerings(trained) -> None:
    """Like `donkey makemovie`: recorded steering in green, the pilot's in blue."""
    import cv2

    _, run = trained
    manifest = json.loads((run / RUN_MANIFEST).read_text())
    movie = manifest["movie"]
    assert movie["file"] in manifest["outputs"]
    assert movie["frames"] == manifest["records"]["validation"]  # all of them (< 300)
    video = cv2.VideoCapture(str(run / movie["file"]))
    assert video.get(cv2.CAP_PROP_FRAME_COUNT) == movie["frames"]
    ok, frame = video.read()  # BGR
    video.release()
    assert ok and frame.shape == (240, 320, 3)
    bottom = frame[-80:].reshape(-1, 3).astype(int)
    green = (bottom[:, 1] > 200) & (bottom[:, 0] < 80) & (bottom[:, 2] < 80)
    blue = (bottom[:, 0] > 200) & (bottom[:, 1] < 80) & (bottom[:, 2] < 80)
    assert green.sum() > 20 and blue.sum() > 20


def test_gpu_required_run_without_a_gpu_fails_in_seconds(tmp_path: Path, capsys) -> None:
    """This machine has no GPU: a cloud job's --require-gpu stops before the download."""
    start = time.monotonic()
    args = ["--data", str(tmp_path / "never-read.tar.zst"), "--output", str(tmp_path / "out")]
    assert main([*args, "--require-gpu"]) == 1
    err = capsys.readouterr().err
    assert "this run needs a GPU but TensorFlow" in err and "--allow-cpu" in err
    assert "never-read" not in err  # refused before fetching the data
    assert time.monotonic() - start < 120


def test_pytorch_car_config_is_refused(tmp_path: Path, capsys) -> None:
    tub = write_sample_tub(tmp_path / "data", records=40, seed=6)
    (tmp_path / "myconfig.py").write_text("DEFAULT_AI_FRAMEWORK = 'pytorch'\n")
    old = old_format_archive(tub, tmp_path / "old.tar.gz", tmp_path / "myconfig.py")
    assert main(["--data", str(old), "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "DEFAULT_AI_FRAMEWORK='pytorch'" in err and "DEFAULT_AI_FRAMEWORK = 'tensorflow'" in err
    assert not list((tmp_path / "out").rglob(COMPLETE))


def test_behavior_model_on_a_tub_without_behavior_keys_is_refused(tmp_path: Path, capsys) -> None:
    tub = write_sample_tub(tmp_path / "data", records=40, seed=7)
    old = old_format_archive(tub, tmp_path / "old.tar.gz")
    args = ["--data", str(old), "--output", str(tmp_path / "out"), "--model-type", "behavior"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "behavior/one_hot_state_array (missing in 40 record(s))" in err


def test_myconfig_file_and_transfer_are_used(trained, tmp_path: Path) -> None:
    """`donkey train --myconfig FILE --transfer MODEL`: the file's settings, the model's start."""
    _, run = trained
    manifest = json.loads((run / RUN_MANIFEST).read_text())
    tub = write_sample_tub(tmp_path / "data", records=120, seed=8)
    old = old_format_archive(tub, tmp_path / "old.tar.gz")
    mine = tmp_path / "race.py"
    mine.write_text("MAX_EPOCHS = 1\nBATCH_SIZE = 16\nFREEZE_LAYERS = True\n")
    args = ["--data", str(old), "--output", str(tmp_path / "out"), "--run-id", "t"]
    assert main([*args, "--myconfig", str(mine), "--transfer", str(run / manifest["model"])]) == 0
    history = json.loads((tmp_path / "out" / "t" / "history.json").read_text())
    assert len(history["loss"]) == 1
    [entry] = json.loads((tmp_path / "out" / "t" / "database.json").read_text())
    assert entry["Transfer"] == manifest["model"]


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


def test_a_run_stopped_by_sigterm_is_marked_interrupted_never_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """`docker stop` (the node's spot interruption handler) sends SIGTERM: the run leaves
    INTERRUPTED.txt, neither COMPLETE nor latest.json nor FAILED.txt. The signal is real and
    comes while the run fetches its archive (the fetch sends it to this process)."""

    def fetch_until_the_signal(data_url: str, dest: Path):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(60)  # never reached: the handler raises as soon as the signal is handled
        raise AssertionError("SIGTERM did not stop the run")

    monkeypatch.setattr(train, "fetch", fetch_until_the_signal)
    output = tmp_path / "out"
    code = main(
        ["--data", str(tmp_path / "data.tar.zst"), "--output", str(output), "--run-id", "spot"]
    )
    assert code == 128 + signal.SIGTERM
    assert "marked INTERRUPTED" in capsys.readouterr().err
    run = output / "spot"
    assert (run / INTERRUPTED).read_text().startswith("Interrupted: stopped by SIGTERM")
    assert not (run / COMPLETE).exists() and not (run / FAILED).exists()
    assert not (output / LATEST).exists()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # given back after the run
