"""`trackday donkey sample-tub | archive | upload | train` as a user types them."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trackday import donkey
from trackday.cli import app
from trackday.trainer_env import ROOT, TRAINER_PYTHON_ENV
from training.donkeycar.archive import read_manifest

NO_TRAINER = "the trainer environment is made by scripts/setup test"

runner = CliRunner()


def trackday(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def car(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A car folder, as the user's current folder: config.py, myconfig.py and a tub in data/."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.py").write_text("MAX_EPOCHS = 2\n")
    (tmp_path / "myconfig.py").write_text("BATCH_SIZE = 8\n")
    assert trackday("donkey", "sample-tub", "data", "--records", "30").exit_code == 0
    return tmp_path


def test_archive_defaults_to_data_and_the_config_beside_it(car: Path) -> None:
    result = trackday("donkey", "archive")
    assert result.exit_code == 0, result.output
    manifest = read_manifest(car / "data.tar.zst")
    assert manifest.tubs == {"data": 30}
    assert manifest.config_files == ["config.py", "myconfig.py"]
    assert "data: 30 records" in result.output


def test_archive_lists_problems_and_writes_nothing(car: Path) -> None:
    (car / "data" / "images" / "4_cam_image_array_.jpg").unlink()
    result = trackday("donkey", "archive", "data", "-o", "out.tar.zst")
    assert result.exit_code == 1
    assert "record 4: image file missing" in result.output and "--skip-bad" in result.output
    assert not (car / "out.tar.zst").exists()

    result = trackday("donkey", "archive", "data", "-o", "out.tar.zst", "--skip-bad")
    assert result.exit_code == 0
    assert "29 records (1 bad skipped)" in result.output


def test_archive_of_a_folder_that_is_no_tub(car: Path) -> None:
    (car / "empty").mkdir()
    result = trackday("donkey", "archive", "empty")
    assert result.exit_code == 1 and "manifest.json is missing" in result.output


def test_sample_tub_refuses_an_existing_tub(car: Path) -> None:
    result = trackday("donkey", "sample-tub", "data")
    assert result.exit_code == 1 and "already holds a tub" in result.output


def test_upload_to_a_prefix_keeps_the_file_name(car, s3_server, monkeypatch) -> None:
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    bucket = s3_server.create_bucket()
    assert trackday("donkey", "archive").exit_code == 0
    result = trackday("donkey", "upload", "data.tar.zst", f"s3://{bucket}/archives/")
    assert result.exit_code == 0, result.output
    digest = hashlib.sha256((car / "data.tar.zst").read_bytes()).hexdigest()
    assert digest in result.output
    assert (s3_server.root / bucket / "archives" / "data.tar.zst").read_bytes() == (
        car / "data.tar.zst"
    ).read_bytes()


def test_upload_to_a_missing_bucket_is_one_clear_line(car, s3_server, monkeypatch) -> None:
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    assert trackday("donkey", "archive").exit_code == 0
    result = trackday("donkey", "upload", "data.tar.zst", "s3://no-such-bucket/a.tar.zst")
    assert result.exit_code == 1
    assert "no-such-bucket" in result.output and "Traceback" not in result.output


def test_train_without_local_points_to_submit(car: Path) -> None:
    result = trackday("donkey", "train", "data")
    assert result.exit_code == 1 and "trackday donkey submit" in result.output


def _said(result) -> str:
    """The output as one line: rich wraps long messages at the terminal width."""
    return " ".join(result.output.split())


def _no_trainer(*_args, **_kwargs):
    raise AssertionError("the trainer must not start")


def test_behavior_model_on_tubs_without_behavior_data_is_refused_before_packing(
    car: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(donkey, "run_trainer", _no_trainer)
    result = trackday("donkey", "train", "data", "--local", "--model-type", "behavior")
    assert result.exit_code == 1
    assert "tub data lacks behavior/one_hot_state_array" in _said(result)
    result = trackday("donkey", "archive", "--model-type", "imu")
    assert result.exit_code == 1 and "imu/acl_x" in _said(result)
    assert not (car / "data.tar.zst").exists()


def test_the_car_configs_model_type_is_checked_when_none_is_given(
    car: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """config.py/myconfig.py's DEFAULT_MODEL_TYPE is the model the run trains: checked too."""
    (car / "myconfig.py").write_text("DEFAULT_MODEL_TYPE = 'localizer'\n")
    result = trackday("donkey", "archive")
    assert result.exit_code == 1 and "model type localizer" in _said(result)
    assert trackday("donkey", "sample-tub", "full", "--records", "5").exit_code == 0
    monkeypatch.setattr(donkey, "run_trainer", _no_trainer)
    archive = trackday("donkey", "archive", "data", "--model-type", "linear", "-o", "d.tar.zst")
    assert archive.exit_code == 0, archive.output
    result = trackday("donkey", "train", "d.tar.zst", "--local")  # its config says localizer
    assert result.exit_code == 1 and "localizer/location" in _said(result)


def test_unsupported_donkeycar_version_is_one_clear_line(car: Path, monkeypatch) -> None:
    monkeypatch.delenv(TRAINER_PYTHON_ENV, raising=False)
    result = trackday("donkey", "train", "data", "--local", "--donkeycar", "4.4.0")
    assert result.exit_code == 1
    assert "donkeycar 4.4.0 is not supported: choose one of 5.3.0, 5.4.0" in _said(result)


def _fake_nvidia_smi(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine whose NVIDIA driver answers, as `nvidia-smi -L` does, without a GPU for TF."""
    folder.mkdir()
    smi = folder / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA L4 (UUID: GPU-0)'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")


@pytest.mark.skipif(not (ROOT / ".venv-trainer" / "bin" / "python").exists(), reason=NO_TRAINER)
def test_on_a_gpu_machine_a_local_run_that_sees_no_gpu_fails(
    car: Path, monkeypatch: pytest.MonkeyPatch, capfd
) -> None:
    _fake_nvidia_smi(car / "bin", monkeypatch)
    monkeypatch.setenv(TRAINER_PYTHON_ENV, str(ROOT / ".venv-trainer" / "bin" / "python"))
    result = trackday("donkey", "train", "data", "--local", "--output", "out")
    assert result.exit_code == 1
    assert "this run needs a GPU but TensorFlow" in capfd.readouterr().err
    assert not (car / "out").exists() or not list((car / "out").rglob("COMPLETE"))


@pytest.mark.skipif(not (ROOT / ".venv-trainer-5.4.0" / "bin").exists(), reason=NO_TRAINER)
def test_several_tubs_train_together_on_the_chosen_donkeycar(car: Path, monkeypatch) -> None:
    """`--donkeycar 5.4.0` trains in that version's own environment; --allow-cpu on a GPU box."""
    monkeypatch.delenv(TRAINER_PYTHON_ENV, raising=False)
    _fake_nvidia_smi(car / "bin", monkeypatch)
    assert trackday("donkey", "sample-tub", "data2", "--records", "30").exit_code == 0
    (car / "config.py").unlink()  # the trainer then uses donkeycar's template, a whole config
    (car / "race.py").write_text("MAX_EPOCHS = 1\nBATCH_SIZE = 8\n")
    result = trackday(
        "donkey", "train", "data", "data2", "--local", "--donkeycar", "5.4.0", "--allow-cpu",
        "--myconfig", "race.py", "--comment", "two tubs", "--run-id", "r", "--output", "out",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((car / "out" / "r" / "run-manifest.json").read_text())
    assert manifest["versions"]["donkeycar"] == "5.4.0"
    assert manifest["records"]["tubs"] == {"data": 30, "data2": 30}
    assert manifest["model"].endswith(".keras") and manifest["comment"] == "two tubs"
    history = json.loads((car / "out" / "r" / "history.json").read_text())
    assert len(history["loss"]) == 1  # race.py replaced the car's myconfig.py


def test_the_default_donkeycar_version_is_the_stacks(tmp_path: Path, monkeypatch) -> None:
    from trackday import trainer_env

    monkeypatch.setattr(trainer_env, "ROOT", tmp_path)
    (tmp_path / "Pulumi.race.yaml").write_text(
        "config:\n  trackday:donkeycar:\n    version: 5.4.0\n"
    )
    assert trainer_env.stack_version("race") == "5.4.0"
    assert trainer_env.stack_version("none") == "5.3.0"
    assert trainer_env.venv_dir("5.4.0") == tmp_path / ".venv-trainer-5.4.0"
