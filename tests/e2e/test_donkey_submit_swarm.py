"""`trackday donkey submit --stack azure` end to end on this machine: the CLI reaches the engine
through a real SSH server on 127.0.0.1 with the stack's key, runs the trainer image as a
one-shot Swarm job that reads and writes an S3 bucket on loopback with the gateway's keys (as
on Azure), then `fetch` downloads the model. A failing job leaves no service behind.

The outputs are the azure stack's own (from its program under Pulumi's mocks), pointed at
what stands in for the cloud here: the manager is this machine, the S3 gateway is
`rclone serve s3` on loopback, and the node's data is the same bucket.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from typer.testing import CliRunner

from tests.infra.stacks import run_stack, shipped_values
from tests.servers import HOST, S3Server, serve_s3
from tests.sshd import SshServer, serve_sshd
from trackday.cli import app
from trackday.swarm_jobs import JOB_LABEL
from training.donkeycar.archive import create_archive
from training.donkeycar.sample_tub import write_sample_tub

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

# The one-node swarm (labelled as the trainer node) and the busybox image of the Swarm job tests.
SMALL = {"MAX_EPOCHS": 2, "BATCH_SIZE": 32, "PRINT_MODEL_SUMMARY": False}


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """An OpenSSH server on 127.0.0.1 that lets in one generated key (the stack's, here)."""
    with serve_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with serve_s3(tmp_path_factory.mktemp("s3"), dir_cache_time="5m") as server:
        yield server


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tub")
    tub = write_sample_tub(root / "data", records=300, seed=7)
    path = root / "data.tar.zst"
    create_archive([tub], path)
    return path


def _outputs(tmp_path: Path, s3: S3Server, ssh: SshServer, image: str, bucket: str) -> Path:
    """The azure stack's outputs, with secrets, pointed at this machine's stand-ins."""
    outputs = {k: o.value for k, o in run_stack("azure", shipped_values("azure")).outputs.items()}
    outputs.update(
        bucketUrl=f"s3://{bucket}",  # this machine reaches the bucket over S3 too, here
        nodeBucketUrl=f"s3://{bucket}",
        s3Endpoint=s3.endpoint,
        s3AccessKeyId=s3.key,
        s3SecretAccessKey=s3.secret,
        managerAddress=HOST,
        sshPort=ssh.port,
        sshUser="root",
        sshPrivateKey=ssh.private_key,
        managerHostKey=ssh.host_key,
        image=image,
    )
    outputs["training"] = {**outputs["training"], "gpus": 0, "overrides": SMALL}
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    return path


def _left_behind(client: docker.DockerClient, output: str) -> list:
    """The services and secrets of the job that `submit` reported (other tests share the engine)."""
    name = re.search(r"Swarm job (\S+)", output).group(1)
    services = client.services.list(filters={"label": f"{JOB_LABEL}={name}"})
    return services + client.secrets.list(filters={"label": f"{JOB_LABEL}={name}"})


def test_submit_trains_on_the_swarm_fetch_gets_the_model_and_the_next_run_starts_from_it(
    swarm, trainer_image, sshd, s3_server, archive, tmp_path
):
    bucket = s3_server.create_bucket()
    outputs = _outputs(tmp_path, s3_server, sshd, trainer_image, bucket)
    env = s3_server.env()  # this machine's own S3 login (the operator's, on a real stack)
    runner = CliRunner()
    submitted = runner.invoke(
        app,
        ["donkey", "submit", str(archive), "--stack", "azure", "--outputs", str(outputs)],
        env=env,
    )
    assert submitted.exit_code == 0, submitted.output
    assert "uploaded s3://" in submitted.stderr
    assert "Swarm job trackday-donkeycar-" in submitted.stderr
    assert "done: trackday donkey fetch" in submitted.stderr
    assert _left_behind(swarm, submitted.stderr) == []
    fetched = runner.invoke(
        app,
        ["donkey", "fetch", "latest", "--stack", "azure", "--outputs", str(outputs),
         "--to", str(tmp_path / "model")],
        env=env,
    )  # fmt: skip
    assert fetched.exit_code == 0, fetched.output
    manifest = json.loads((tmp_path / "model" / "run-manifest.json").read_text())
    assert (tmp_path / "model" / manifest["tflite"]).stat().st_size > 0  # donkeycar's name
    # Chaining runs: the next one starts from this one's model, named as the node names it.
    chained = runner.invoke(
        app,
        ["donkey", "submit", str(archive), "--stack", "azure", "--outputs", str(outputs),
         "--transfer", "latest"],
        env=env,
    )  # fmt: skip
    assert chained.exit_code == 0, chained.output
    fetched = runner.invoke(
        app,
        ["donkey", "fetch", "latest", "--stack", "azure", "--outputs", str(outputs),
         "--to", str(tmp_path / "chained")],
        env=env,
    )  # fmt: skip
    assert fetched.exit_code == 0, fetched.output
    second = json.loads((tmp_path / "chained" / "run-manifest.json").read_text())
    source = f"s3://{bucket}/runs/donkeycar/{manifest['run_id']}/{manifest['model']}"
    assert second["transfer"]["source"] == source
    [entry] = json.loads((tmp_path / "chained" / "database.json").read_text())
    assert entry["Transfer"] == manifest["model"]  # donkeycar's train() started from it


def test_failed_job_fails_submit_and_leaves_no_service(
    swarm, busybox_image, sshd, s3_server, archive, tmp_path
):
    bucket = s3_server.create_bucket()
    # busybox has no trainer: the job's container exits with an error.
    outputs = _outputs(tmp_path, s3_server, sshd, busybox_image, bucket)
    result = CliRunner().invoke(
        app,
        ["donkey", "submit", str(archive), "--stack", "azure", "--outputs", str(outputs)],
        env=s3_server.env(),
    )
    assert result.exit_code == 1
    assert "error: job failed (exit code" in result.stderr
    assert _left_behind(swarm, result.stderr) == []


def test_no_follow_is_refused_for_swarm_stacks(sshd, s3_server, archive, tmp_path):
    outputs = _outputs(tmp_path, s3_server, sshd, "unused", "unused")
    result = CliRunner().invoke(
        app,
        ["donkey", "submit", str(archive), "--stack", "azure", "--outputs", str(outputs),
         "--no-follow"],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "--no-follow: a Swarm job is followed to its end" in result.stderr


def test_wrong_key_is_one_clear_line(sshd, s3_server, archive, tmp_path):
    bucket = s3_server.create_bucket()
    outputs = _outputs(tmp_path, s3_server, sshd, "unused", bucket)
    data = json.loads(outputs.read_text())
    data["sshPrivateKey"] = "not a key"
    outputs.write_text(json.dumps(data))
    result = CliRunner().invoke(
        app,
        ["donkey", "submit", str(archive), "--stack", "azure", "--outputs", str(outputs)],
        env=s3_server.env(),
    )
    assert result.exit_code == 1
    assert "sshPrivateKey: not an Ed25519, ECDSA or RSA private key" in result.stderr


def test_another_host_at_the_manager_address_is_refused(sshd, s3_server, archive, tmp_path):
    bucket = s3_server.create_bucket()
    outputs = _outputs(tmp_path, s3_server, sshd, "unused", bucket)
    data = json.loads(outputs.read_text())
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    data["managerHostKey"] = (tmp_path / "other.pub").read_text()
    outputs.write_text(json.dumps(data))
    result = CliRunner().invoke(
        app,
        ["donkey", "submit", str(archive), "--stack", "azure", "--outputs", str(outputs)],
        env=s3_server.env(),
    )
    assert result.exit_code == 1
    assert f"cannot reach the Docker engine at ssh://root@{HOST}" in result.stderr
