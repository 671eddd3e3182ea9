"""`trackday donkey sample-tub | archive | upload | train` as a user types them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trackday.cli import app
from training.donkeycar.archive import read_manifest

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
