"""`trackday dr ...` as a user runs it: exit codes, files written, one-line errors."""

import io
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.training.deepracer.dr_data import TRACKS, make_drfc, write_folder, write_run
from trackday.cli import app
from training.deepracer.track import IMAGE_ROUTES

runner = CliRunner()


def run(*args):
    return runner.invoke(app, ["dr", *map(str, args)])


def test_import_writes_fragment_and_files(tmp_path):
    result = run("import", make_drfc(tmp_path / "drfc"), "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    fragment = yaml.safe_load((tmp_path / "out" / "stack-config.yaml").read_text())
    assert fragment["config"]["trackday:deepracer"]["world"] == "2022_april_open_ccw"
    assert (tmp_path / "out" / "custom_files" / "reward_function.py").is_file()
    assert "DR_LOCAL_S3_BUCKET" in result.output and "not mapped" in result.output


def test_import_of_a_wrong_folder_fails_in_one_line(tmp_path):
    result = run("import", tmp_path)
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and result.output.count("\n") == 1


def test_validate_writes_png_and_reports_problems(tmp_path):
    folder = write_folder(tmp_path / "cf")
    png = tmp_path / "lap.png"
    ok = run("validate", folder, "--tracks-dir", TRACKS, "--world", "Austin", "--png", png)
    assert ok.exit_code == 0, ok.output
    assert "reward_function ok on Austin (TIME_TRIAL)" in ok.output and png.stat().st_size > 0
    (folder / "reward_function.py").write_text("import os\ndef reward_function(p):\n  return 1\n")
    warned = run("validate", folder, "--tracks-dir", TRACKS)
    assert warned.exit_code == 0, warned.output  # training runs it; DRoA import would not
    assert "warning: reward_function.py:1: DRoA import refuses import 'os'" in warned.output
    (folder / "reward_function.py").write_text("def reward_function(p):\n  return p['nope']\n")
    bad = run("validate", folder, "--tracks-dir", TRACKS)
    assert bad.exit_code == 1
    assert "problem: reward_function.py:2: reward_function raised KeyError: 'nope'" in bad.output


def test_validate_reads_the_stack_file(tmp_path):
    folder = write_folder(tmp_path / "cf")
    (tmp_path / "Pulumi.dr.yaml").write_text(
        yaml.safe_dump(
            {
                "config": {
                    "trackday:deepracer": {
                        "world": "Spain_track",
                        "raceType": "HEAD_TO_BOT",
                        "customFilesDir": str(folder),
                    }
                }
            }
        )
    )
    result = run(
        "validate",
        "--stack",
        "dr",
        "--dir",
        tmp_path,
        "--tracks-dir",
        TRACKS,
        "--png",
        tmp_path / "x.png",
    )
    assert result.exit_code == 0, result.output
    assert "ok on Spain_track (HEAD_TO_BOT)" in result.output
    (tmp_path / "Pulumi.dr.yaml").write_text(
        yaml.safe_dump({"config": {"trackday:deepracer": {"workers": 0}}})
    )
    bad = run("validate", "--stack", "dr", "--dir", tmp_path, "--tracks-dir", TRACKS)
    assert bad.exit_code == 2
    assert "error: trackday:deepracer.workers: Input should be greater than or equal to 1" in (
        bad.output
    )


def test_validate_without_tracks_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr("trackday.dr.DEFAULT_TRACKS", tmp_path / "none")
    monkeypatch.delenv("TRACKDAY_TRACKS_DIR", raising=False)
    result = run("validate", write_folder(tmp_path / "cf"))
    assert result.exit_code == 2 and "run `trackday dr tracks`" in result.output


def test_metrics_table_and_plot(tmp_path):
    prefix = write_run(tmp_path / "bucket")
    png = tmp_path / "metrics.png"
    result = run("metrics", prefix, "--png", png, "--top", "2")
    assert result.exit_code == 0, result.output
    assert "best iterations by evaluation progress" in result.output
    assert "best checkpoint: 5_Step-6000.ckpt" in result.output
    assert "6 iterations" in result.output and png.stat().st_size > 0
    missing = run("metrics", tmp_path / "nothing-here")
    assert missing.exit_code == 2 and missing.output.startswith("error: ")


def test_increment_training_prints_the_changes(tmp_path):
    (tmp_path / "Pulumi.dr.yaml").write_text(
        yaml.safe_dump({"config": {"trackday:deepracer": {"modelPrefix": "racer-4"}}})
    )
    result = run("increment-training", "--stack", "dr", "--dir", tmp_path)
    assert result.exit_code == 0, result.output
    assert "model racer-4 -> racer-5" in result.output
    assert "--path 'deepracer.pretrained.modelPrefix' racer-4" in result.output


@pytest.mark.docker
def test_tracks_are_copied_out_of_an_image(tmp_path):
    """An image holding the routes where the simulator keeps them, made with docker import."""
    if shutil.which("docker") is None:
        pytest.fail("docker not found: run scripts/setup test")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for world in ("reinvent_base", "Austin"):
            tar.add(TRACKS / f"{world}.npy", arcname=f"{IMAGE_ROUTES}/{world}.npy".lstrip("/"))
    image = f"trackday-test-routes:{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["docker", "import", "-", image], input=archive.getvalue(), check=True, capture_output=True
    )
    try:
        result = run("tracks", "--image", image, "--out", tmp_path / "tracks")
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in Path(tmp_path / "tracks").iterdir()) == [
            "Austin.npy",
            "reinvent_base.npy",
        ]
        assert (tmp_path / "tracks" / "Austin.npy").read_bytes() == (
            TRACKS / "Austin.npy"
        ).read_bytes()
        missing = run("tracks", "--image", "trackday-test-routes:absent", "--out", tmp_path)
        assert missing.exit_code == 2 and "docker create failed" in missing.output
    finally:
        subprocess.run(["docker", "rmi", image], capture_output=True, check=False)
    leftovers = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"ancestor={image}", "-q"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert leftovers.strip() == ""
