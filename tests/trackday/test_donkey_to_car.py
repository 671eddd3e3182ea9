"""`trackday donkey to-car HOST` against a real OpenSSH server on 127.0.0.1.

The car is this machine, reached through an ssh config file as a user's own would name it
(Host alias, port, key, known host); the copied files are checked on disk here.
"""

from __future__ import annotations

import getpass
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.servers import free_port
from tests.sshd import serve_sshd
from trackday.cli import app
from trackday.donkey_car import drive_commands

MODEL = "pilot_26-01-01_0.keras"


@pytest.fixture(scope="module")
def car_ssh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An sshd on 127.0.0.1 letting in one generated key; returns an ssh config naming it `car`."""
    with serve_sshd(tmp_path_factory.mktemp("sshd")) as server:
        work = server.work
        (work / "known_hosts").write_text(f"[127.0.0.1]:{server.port} {server.host_key}")
        config = work / "ssh_config"
        config.write_text(
            f"Host car\n  HostName 127.0.0.1\n  Port {server.port}\n  User {getpass.getuser()}\n"
            f"  IdentityFile {work / 'client'}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {work / 'known_hosts'}\n  StrictHostKeyChecking yes\n"
        )
        yield config


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A fetched run as the trainer writes it: 5.4.0 names, every file in the manifest."""
    run = tmp_path / "run"
    files = {
        MODEL: b"keras zip",
        "pilot_26-01-01_0.tflite": b"tflite",
        "database.json": b"[]",
        "loss.png": b"png",
        "logs/20260101-000000/train/events": b"tb",
    }
    for rel, data in files.items():
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_bytes(data)
    manifest = {
        "model": MODEL,
        "tflite": "pilot_26-01-01_0.tflite",
        "model_type": "categorical",
        "outputs": {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()},
    }
    (run / "run-manifest.json").write_text(json.dumps(manifest))
    return run


def test_drive_commands_name_the_type_for_each_file(run_dir: Path) -> None:
    assert drive_commands(run_dir) == [
        "python manage.py drive --model models/pilot_26-01-01_0.tflite --type tflite_categorical",
        f"python manage.py drive --model models/{MODEL} --type categorical",
    ]


def test_to_car_copies_the_model_files_and_verifies_them(car_ssh, run_dir, tmp_path) -> None:
    models = tmp_path / "car" / "mycar" / "models"
    result = CliRunner().invoke(
        app,
        ["donkey", "to-car", "car", "--from", str(run_dir), "--models-dir", str(models),
         "--ssh-config", str(car_ssh)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in models.iterdir()) == [MODEL, "pilot_26-01-01_0.tflite"]
    assert (models / MODEL).read_bytes() == b"keras zip"
    assert "checksums verified" in " ".join(result.output.split())
    # the drive commands are whole lines, to copy as they are (not wrapped at the terminal width)
    assert f"python manage.py drive --model models/{MODEL} --type categorical\n" in result.output


def test_an_unreachable_car_is_one_clear_line(car_ssh, run_dir, tmp_path) -> None:
    config = tmp_path / "ssh_config"
    config.write_text(
        car_ssh.read_text().replace("Port ", f"Port {free_port()}\n  #Port ")
        + "  ConnectTimeout 5\n"
    )
    result = CliRunner().invoke(
        app,
        ["donkey", "to-car", "car", "--from", str(run_dir), "--ssh-config", str(config)],
    )
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and "error: ssh car failed:" in said and "refused" in said
    assert "Traceback" not in result.output
