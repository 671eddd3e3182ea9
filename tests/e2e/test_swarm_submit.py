"""The DonkeyCar trainer as a one-shot Swarm service, exactly as `submit --stack aws|azure` runs it.

A single-node swarm on this machine's engine (tests/e2e/test_swarm_jobs.py) runs the trainer
image (tests/e2e/conftest.py) with the service spec `trackday.swarm_jobs` builds; the tub's
archive is read from, and the model written to, `rclone serve s3` on 127.0.0.1. The S3 keys
reach the container as they do on Azure: a Swarm secret holding an AWS credentials file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import docker
import pytest

from tests.e2e.test_swarm_jobs import left_behind, swarm  # noqa: F401  (the shared swarm fixture)
from tests.servers import S3Server, serve_s3
from trackday import swarm_jobs
from trackday.runs import trainer_args
from trackday.swarm_jobs import S3Credentials
from training import storage
from training.donkeycar.archive import create_archive
from training.donkeycar.sample_tub import write_sample_tub

pytestmark = [pytest.mark.docker, pytest.mark.timeout(3600)]

SMALL = {"MAX_EPOCHS": 2, "BATCH_SIZE": 32, "PRINT_MODEL_SUMMARY": False}


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """rclone serve s3 with a folder cache: a training run's many uploads stall without one."""
    with serve_s3(tmp_path_factory.mktemp("s3"), dir_cache_time="5m") as server:
        yield server


@pytest.fixture(scope="module")
def archive_url(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A generated tub, archived and uploaded with trackday's own code."""
    root = tmp_path_factory.mktemp("tub")
    archive = root / "data.tar.zst"
    create_archive([write_sample_tub(root / "data", records=300, seed=11)], archive)
    url = f"s3://{s3_server.create_bucket()}/archives/data.tar.zst"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in s3_server.env().items():
            patch.setenv(name, value)
        storage.upload(archive, url, progress=False)
    return url


def bucket_of(url: str) -> str:
    return url.removeprefix("s3://").split("/", 1)[0]


def submit(
    client: docker.DockerClient, image: str, server: S3Server, data_url: str, run_id: str
) -> tuple[swarm_jobs.JobResult, list[str], swarm_jobs.SwarmJob]:
    output_url = f"s3://{bucket_of(data_url)}/runs"
    args = trainer_args(data_url, output_url, run_id, "linear", SMALL)
    job = swarm_jobs.trainer_job(image, args, run_id, s3_endpoint=server.endpoint)
    lines: list[str] = []
    result = swarm_jobs.run_job(
        client, job, lines.append, credentials=S3Credentials(server.key, server.secret)
    )
    return result, lines, job


def test_trainer_runs_as_a_one_shot_service_and_its_model_lands_in_the_bucket(
    swarm: docker.DockerClient,  # noqa: F811
    trainer_image: str,
    s3_server: S3Server,
    archive_url: str,
) -> None:
    run_id = "swarm-run-1"
    result, lines, job = submit(swarm, trainer_image, s3_server, archive_url, run_id)
    assert result.succeeded, (result, lines[-40:])
    assert any(f"run complete: s3://{bucket_of(archive_url)}/runs/{run_id}" in x for x in lines)
    bucket = bucket_of(archive_url)
    client = s3_server.client()
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"runs/{run_id}/")
    keys = {o["Key"].removeprefix(f"runs/{run_id}/") for o in listed.get("Contents", [])}
    assert {"pilot.tflite", "history.json", "run-manifest.json", "COMPLETE"} <= keys
    history = json.loads(
        client.get_object(Bucket=bucket, Key=f"runs/{run_id}/history.json")["Body"].read()
    )
    assert len(history["loss"]) == SMALL["MAX_EPOCHS"]
    assert left_behind(swarm, job) == []


def test_a_failed_training_run_leaves_no_service_and_no_model(
    swarm: docker.DockerClient,  # noqa: F811
    trainer_image: str,
    s3_server: S3Server,
    archive_url: str,
) -> None:
    run_id = "swarm-run-bad"
    missing = archive_url.replace("data.tar.zst", "missing.tar.zst")
    result, lines, job = submit(swarm, trainer_image, s3_server, missing, run_id)
    assert not result.succeeded
    assert result.state == "failed" and result.exit_code not in (None, 0)
    assert any("missing.tar.zst" in line for line in lines), lines[-20:]
    assert left_behind(swarm, job) == []
    listed = s3_server.client().list_objects_v2(
        Bucket=bucket_of(archive_url), Prefix=f"runs/{run_id}/"
    )
    keys = {o["Key"] for o in listed.get("Contents", [])}
    assert f"runs/{run_id}/COMPLETE" not in keys
