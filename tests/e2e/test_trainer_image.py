"""The DonkeyCar trainer image end to end, on the real Docker engine.

The image is built from a base image made here (tests/e2e/conftest.py); a container reads
a generated tub's archive from `rclone serve s3` on 127.0.0.1 and writes its run back there,
as it would against a cloud bucket.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.servers import S3Server, serve_s3
from training import storage
from training.donkeycar.archive import create_archive
from training.donkeycar.sample_tub import write_sample_tub

if TYPE_CHECKING:
    from tests.e2e.conftest import Donkeycar

pytestmark = [pytest.mark.docker, pytest.mark.timeout(3600)]

RUN_ID = "e2e-run"
SMALL = ["--set", "MAX_EPOCHS=2", "--set", "BATCH_SIZE=32", "--set", "PRINT_MODEL_SUMMARY=False"]


def docker_run(
    docker: str,
    image: str,
    args: list[str],
    env: dict[str, str] | None = None,
    entrypoint: str | None = None,
    network: str = "host",
) -> subprocess.CompletedProcess[str]:
    """`docker run` with a read-only root: whatever the container needs must be in the image.

    Environment values reach docker through its own environment (`-e NAME`), so keys never
    appear on a command line.
    """
    env = env or {}
    argv = [docker, "run", "--rm", "--network", network, "--read-only", "--tmpfs", "/tmp"]
    for name in env:
        argv += ["--env", name]
    if entrypoint:
        argv += ["--entrypoint", entrypoint]
    return subprocess.run(
        [*argv, image, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )


def container_env(server: S3Server) -> dict[str, str]:
    """What a container needs to reach the loopback S3 server, as on any S3-compatible store."""
    return {
        "AWS_ENDPOINT_URL": server.endpoint,
        "AWS_ACCESS_KEY_ID": server.key,
        "AWS_SECRET_ACCESS_KEY": server.secret,
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def bucket_keys(server: S3Server, bucket: str, prefix: str) -> set[str]:
    """Object keys under `prefix`, listed through the S3 API (not through training.storage)."""
    pages = server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {obj["Key"] for page in pages for obj in page.get("Contents", [])}


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """`rclone serve s3` with rclone's own folder cache time: everything here goes through the
    S3 API, and with no cache (the session server's setting) a training run's uploads stall."""
    with serve_s3(tmp_path_factory.mktemp("s3"), dir_cache_time="5m") as server:
        yield server


@pytest.fixture(scope="module")
def archive_in_bucket(
    s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str]:
    """A lane-line sample tub, archived and uploaded with trackday's own code; (bucket, URL)."""
    root = tmp_path_factory.mktemp("tub")
    tub = write_sample_tub(root / "data", records=300, seed=7)
    archive = root / "data.tar.zst"
    create_archive([tub], archive)
    bucket = s3_server.create_bucket()
    url = f"s3://{bucket}/archives/data.tar.zst"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in s3_server.env().items():
            patch.setenv(name, value)
        storage.upload(archive, url, progress=False)
    return bucket, url


@pytest.fixture(scope="module")
def trained_run(
    docker_engine: str,
    trainer_image: str,
    s3_server: S3Server,
    archive_in_bucket: tuple[str, str],
) -> tuple[str, subprocess.CompletedProcess[str]]:
    """One training run in a container, from S3 on loopback to S3 on loopback; (bucket, result)."""
    bucket, data_url = archive_in_bucket
    args = ["--data", data_url, "--output", f"s3://{bucket}/runs", "--run-id", RUN_ID, *SMALL]
    result = docker_run(docker_engine, trainer_image, args, container_env(s3_server))
    return bucket, result


def test_image_runs_the_trainer_as_a_non_root_user(docker_engine: str, trainer_image: str) -> None:
    inspected = subprocess.run(
        [docker_engine, "image", "inspect", trainer_image, "--format", "{{json .Config}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    config = json.loads(inspected.stdout)
    assert config["Entrypoint"] == ["python", "-m", "training.donkeycar.train"]
    # What nvidia/cuda's images set, so that the NVIDIA runtime mounts the driver into the
    # plain-Python 5.4.0 image too (issue 9 item 5; Vertex AI mounts it at /usr/local/nvidia).
    env = dict(entry.split("=", 1) for entry in config["Env"])
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"
    assert set(env["NVIDIA_DRIVER_CAPABILITIES"].split(",")) >= {"compute", "utility"}
    assert "/usr/local/nvidia/lib64" in env["LD_LIBRARY_PATH"].split(":")
    assert config["User"] not in ("", "root", "0")
    uid = docker_run(docker_engine, trainer_image, ["-u"], entrypoint="id", network="none")
    assert uid.returncode == 0, uid.stderr
    assert uid.stdout.strip() != "0"


def test_image_holds_the_pinned_donkeycar_and_tensorflow_offline(
    docker_engine: str, trainer_image: str, donkeycar: Donkeycar
) -> None:
    """Without any network and on a read-only root, the trainer's imports all work."""
    probe = (
        "import donkeycar, tensorflow, training.donkeycar.train, training.storage;"
        "print(donkeycar.__version__, tensorflow.__version__)"
    )
    result = docker_run(
        docker_engine, trainer_image, ["-c", probe], entrypoint="python", network="none"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    donkeycar_version, tensorflow_version = result.stdout.split()[-2:]
    assert donkeycar_version == donkeycar.version
    assert tensorflow_version.startswith(donkeycar.tensorflow)


def test_image_holds_only_the_trainer_code(docker_engine: str, trainer_image: str) -> None:
    """The operator's side (Pulumi program, CLI) and the tests stay out of the image."""
    probe = "import os; print(' '.join(sorted(os.listdir('/opt/trackday-src'))))"
    result = docker_run(
        docker_engine, trainer_image, ["-c", probe], entrypoint="python", network="none"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["training"]


def test_container_trains_from_s3_to_s3(trained_run, s3_server: S3Server) -> None:
    bucket, result = trained_run
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"run complete: s3://{bucket}/runs/{RUN_ID}" in result.stdout
    run = f"runs/{RUN_ID}/"
    keys = {key.removeprefix(run) for key in bucket_keys(s3_server, bucket, run)}
    manifest = json.loads(
        s3_server.client().get_object(Bucket=bucket, Key=f"{run}run-manifest.json")["Body"].read()
    )  # the model files carry the names the image's donkeycar gives them
    expected = {manifest["tflite"], "history.json", "loss.png", "run-manifest.json", "COMPLETE"}
    assert expected <= keys and "database.json" in keys
    assert any(key.startswith(manifest["model"]) for key in keys)
    assert "FAILED.txt" not in keys
    latest = json.loads(
        s3_server.client().get_object(Bucket=bucket, Key="runs/latest.json")["Body"].read()
    )
    assert latest["run_id"] == RUN_ID


def test_run_manifest_matches_the_uploaded_outputs(
    trained_run, s3_server: S3Server, donkeycar: Donkeycar
) -> None:
    bucket, result = trained_run
    assert result.returncode == 0, result.stderr[-4000:]
    client = s3_server.client()
    run = f"runs/{RUN_ID}"
    manifest = json.loads(
        client.get_object(Bucket=bucket, Key=f"{run}/run-manifest.json")["Body"].read()
    )
    assert manifest["versions"]["donkeycar"] == donkeycar.version
    assert manifest["records"]["tubs"] == {"data": 300}
    history = json.loads(client.get_object(Bucket=bucket, Key=f"{run}/history.json")["Body"].read())
    assert len(history["loss"]) == 2
    for rel, digest in manifest["outputs"].items():
        body = client.get_object(Bucket=bucket, Key=f"{run}/{rel}")["Body"].read()
        assert hashlib.sha256(body).hexdigest() == digest, rel
    marker = client.get_object(Bucket=bucket, Key=f"{run}/COMPLETE")["Body"].read().decode()
    manifest_body = client.get_object(Bucket=bucket, Key=f"{run}/run-manifest.json")["Body"].read()
    assert marker.strip() == hashlib.sha256(manifest_body).hexdigest()


def test_bad_data_url_fails_clearly_and_marks_nothing_complete(
    docker_engine: str, trainer_image: str, s3_server: S3Server
) -> None:
    bucket = s3_server.create_bucket()
    missing = f"s3://{bucket}/archives/no-such-archive.tar.zst"
    args = ["--data", missing, "--output", f"s3://{bucket}/runs", "--run-id", "bad", *SMALL]
    result = docker_run(docker_engine, trainer_image, args, container_env(s3_server))
    assert result.returncode != 0
    error_lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert error_lines, result.stderr[-2000:]
    assert "no-such-archive.tar.zst" in error_lines[-1]
    assert "Traceback" not in result.stderr
    keys = bucket_keys(s3_server, bucket, "runs/")
    assert "runs/bad/COMPLETE" not in keys
    assert "runs/latest.json" not in keys
