"""Training on a deployed stack: the Vertex AI job spec, creating and following the job, the
archive upload, and fetching a finished run, against servers on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials
from google.auth.transport.requests import AuthorizedSession
from google.cloud import aiplatform_v1
from typer.testing import CliRunner

from tests.infra.stacks import run_stack, shipped_values, with_keys
from tests.infra.vertex_server import serve_vertex
from trackday import runs, vertex
from trackday.cli import app
from trackday.run_options import RunOptions
from trackday.stack import StackError, gcp_outputs, read_outputs
from training import storage
from training.donkeycar import train

DATA = "gs://bucket/tubs/0123456789abcdef-tub.tar.zst"
OUTPUT = "gs://bucket/runs/donkeycar"


def _outputs(stack: str, values: dict) -> dict:
    """A stack's outputs as `pulumi stack output --json --show-secrets` prints them."""
    return {name: out.value for name, out in run_stack(stack, values).outputs.items()}


@pytest.fixture(scope="module")
def gcp() -> dict:
    return _outputs("gcp", shipped_values("gcp"))


def test_job_spec_runs_the_stack_image_on_its_machine_as_its_account(gcp):
    spec = vertex.custom_job_spec(
        gcp_outputs("gcp", gcp), DATA, OUTPUT, "20260101-000000-abc123", "gcp"
    )
    job = aiplatform_v1.CustomJob(spec)  # the SDK's own types refuse unknown fields
    pool = job.job_spec.worker_pool_specs[0]
    assert pool.machine_spec.machine_type == "n1-standard-8"
    assert pool.machine_spec.accelerator_type == aiplatform_v1.AcceleratorType.NVIDIA_TESLA_T4
    assert pool.machine_spec.accelerator_count == 1
    assert pool.replica_count == 1
    assert pool.disk_spec.boot_disk_size_gb == 100
    assert pool.container_spec.image_uri == gcp["image"]
    assert job.job_spec.service_account == gcp["trainerServiceAccount"]
    assert job.job_spec.scheduling.strategy == aiplatform_v1.Scheduling.Strategy.ON_DEMAND
    assert job.job_spec.scheduling.timeout.total_seconds() == 4 * 3600
    # No --model-type: the stack sets none, so the car config's DEFAULT_MODEL_TYPE decides.
    # The job asks for a GPU, so the trainer must find one.
    assert list(pool.container_spec.args) == [
        "--data", DATA, "--output", OUTPUT, "--run-id", "20260101-000000-abc123",
        "--set", "BATCH_SIZE=128", "--set", "MAX_EPOCHS=100", "--require-gpu",
    ]  # fmt: skip
    assert dict(job.labels) == {"trackday-stack": "gcp", "trackday-run": "20260101-000000-abc123"}


def test_spot_and_other_gpus_reach_the_job():
    outputs = _outputs("gcp", with_keys("gcp", nodes={"gpu": {"type": "L4"}, "spot": True}))
    spec = vertex.custom_job_spec(gcp_outputs("gcp", outputs), DATA, OUTPUT, "r1", "gcp")
    job = aiplatform_v1.CustomJob(spec)
    pool = job.job_spec.worker_pool_specs[0]
    assert pool.machine_spec.machine_type == "g2-standard-8"
    assert pool.machine_spec.accelerator_type == aiplatform_v1.AcceleratorType.NVIDIA_L4
    assert job.job_spec.scheduling.strategy == aiplatform_v1.Scheduling.Strategy.SPOT


def test_overrides_reach_the_trainer_as_the_values_configured():
    overrides = {
        "BATCH_SIZE": 64,
        "OPTIMIZER": "adam",
        "USE_EARLY_STOP": False,
        "LEARNING_RATE": 0.001,
    }
    outputs = _outputs("gcp", with_keys("gcp", donkeycar={"overrides": overrides}))
    spec = vertex.custom_job_spec(gcp_outputs("gcp", outputs), DATA, OUTPUT, "r1", "gcp")
    args = spec["job_spec"]["worker_pool_specs"][0]["container_spec"]["args"]
    pairs = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    assert train.parse_overrides(pairs) == overrides


def test_command_line_wins_over_the_stack_and_the_stack_over_the_car_config():
    outputs = _outputs("gcp", with_keys("gcp", donkeycar={"modelType": "categorical"}))
    stack_only = vertex.custom_job_spec(gcp_outputs("gcp", outputs), DATA, OUTPUT, "r1", "gcp")
    args = stack_only["job_spec"]["worker_pool_specs"][0]["container_spec"]["args"]
    assert args[args.index("--model-type") + 1] == "categorical"
    options = RunOptions("inferred", {"MAX_EPOCHS": 3, "CACHE_IMAGES": False}, allow_cpu=True)
    spec = vertex.custom_job_spec(gcp_outputs("gcp", outputs), DATA, OUTPUT, "r1", "gcp", options)
    args = spec["job_spec"]["worker_pool_specs"][0]["container_spec"]["args"]
    assert args[args.index("--model-type") + 1] == "inferred"
    pairs = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    assert train.parse_overrides(pairs) == {
        "BATCH_SIZE": 128, "MAX_EPOCHS": 3, "CACHE_IMAGES": False
    }  # fmt: skip
    assert "--require-gpu" not in args  # --allow-cpu


def test_local_stack_outputs_are_refused_for_vertex():
    local = _outputs("dev", shipped_values("dev"))
    with pytest.raises(StackError, match=r"stack dev is not a gcp stack \(target 'local'\)"):
        gcp_outputs("dev", local)


def test_missing_output_is_named(gcp):
    partial = {k: v for k, v in gcp.items() if k != "trainerServiceAccount"}
    with pytest.raises(
        StackError, match=r"stack gcp: output trainerServiceAccount: Field required"
    ):
        gcp_outputs("gcp", partial)


def test_outputs_from_a_file(tmp_path, gcp):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(gcp))
    assert read_outputs("gcp", path) == gcp
    path.write_text("{not json")
    with pytest.raises(StackError, match=r"--outputs .*outputs.json: not JSON"):
        read_outputs("gcp", path)
    with pytest.raises(StackError, match=r"--outputs .*missing.json: No such file or directory"):
        read_outputs("gcp", tmp_path / "missing.json")


def test_without_pulumi_cli_the_error_says_to_pass_outputs(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StackError, match=r"pulumi CLI is not installed here: pass --outputs FILE"):
        read_outputs("gcp")


def _jobs(endpoint: str, project: str = "my-trackday-project") -> vertex.VertexJobs:
    client = aiplatform_v1.JobServiceClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint},
    )
    return vertex.VertexJobs(
        project, "us-central1", client=client, logs=AuthorizedSession(AnonymousCredentials()),
        logging_endpoint=endpoint,
    )  # fmt: skip


def test_job_is_created_and_followed_to_its_end(gcp):
    outputs = gcp_outputs("gcp", gcp)
    spec = vertex.custom_job_spec(outputs, DATA, OUTPUT, "r1", "gcp")
    with serve_vertex() as fake:
        jobs = _jobs(fake.endpoint)
        name = jobs.create(spec)
        lines: list[str] = []
        status = vertex.follow(jobs, name, lines.append, sleep=lambda _: None)
    assert name == "projects/my-trackday-project/locations/us-central1/customJobs/123"
    sent = fake.created[0]["jobSpec"]
    assert sent["serviceAccount"] == outputs.trainer_service_account
    assert sent["workerPoolSpecs"][0]["containerSpec"]["imageUri"] == outputs.image
    assert sent["workerPoolSpecs"][0]["machineSpec"]["machineType"] == "n1-standard-8"
    assert status.state == "JOB_STATE_SUCCEEDED"
    assert lines == [
        "job state: queued", "epoch 1/2", "epoch 2/2", "uploaded",
        "job state: pending", "job state: running", "job state: succeeded",
    ]  # fmt: skip
    query = fake.log_requests[0]
    assert query["filter"].startswith('resource.type="ml_job" AND resource.labels.job_id="123"')
    assert query["resourceNames"] == ["projects/my-trackday-project"]
    # the first poll read both pages (two entries a page here)
    assert fake.log_requests[1]["pageToken"] == "2"
    # later queries ask from the last line shown on, entries already shown are not repeated
    assert 'timestamp>="2026-01-01T00:00:01Z"' in fake.log_requests[2]["filter"]


def test_the_last_lines_delivered_after_the_job_ended_are_shown(gcp):
    """Cloud Logging delivers the traceback after the job has failed: following drains it."""
    spec = vertex.custom_job_spec(gcp_outputs("gcp", gcp), DATA, OUTPUT, "r1", "gcp")
    with serve_vertex() as fake:
        fake.final_state, fake.error = "JOB_STATE_FAILED", "The replica workerpool0-0 exited with 1"
        fake.late_lines = ["Traceback (most recent call last):", "ValueError: boom"]
        jobs = _jobs(fake.endpoint)
        lines: list[str] = []
        vertex.follow(jobs, jobs.create(spec), lines.append, sleep=lambda _: None)
    assert lines[-3:] == [
        "job state: failed",
        "Traceback (most recent call last):",
        "ValueError: boom",
    ]
    assert len(lines) == len(set(lines))  # nothing shown twice


@pytest.mark.parametrize(
    ("call", "code", "expected"),
    [
        ("create", 403, "needs the roles Vertex AI User (roles/aiplatform.user)"),
        ("create", 400, "Vertex AI refused the request as invalid"),
        ("create", 429, "quota exceeded in us-central1: request more (GPU) quota"),
        ("get", 403, "project my-trackday-project"),
    ],
)
def test_api_errors_are_one_line_naming_the_fix(gcp, call, code, expected):
    spec = vertex.custom_job_spec(gcp_outputs("gcp", gcp), DATA, OUTPUT, "r1", "gcp")
    with serve_vertex() as fake:
        fake.errors[call] = (code, "the service's own words")
        jobs = _jobs(fake.endpoint)
        with pytest.raises(vertex.VertexError) as caught:
            jobs.status(jobs.create(spec)) if call == "get" else jobs.create(spec)
    message = str(caught.value)
    assert expected in message and "the service's own words" in message and "\n" not in message


def test_logs_refused_leave_the_state_followed(gcp):
    spec = vertex.custom_job_spec(gcp_outputs("gcp", gcp), DATA, OUTPUT, "r1", "gcp")
    with serve_vertex() as fake:
        fake.errors["logs"] = (403, "logging.logEntries.list denied")
        jobs = _jobs(fake.endpoint)
        lines: list[str] = []
        status = vertex.follow(jobs, jobs.create(spec), lines.append, sleep=lambda _: None)
    assert status.state == "JOB_STATE_SUCCEEDED"
    assert "Logs Viewer (roles/logging.viewer)" in lines[1] and lines[-1] == "job state: succeeded"


def test_the_stand_in_refuses_what_the_service_refuses():
    """Unknown job fields and unknown entries.list fields are a 400, as from Google."""
    import requests

    with serve_vertex() as fake:
        parent = f"{fake.endpoint}/v1/projects/p/locations/us-central1/customJobs"
        bad_job = requests.post(parent, json={"displayName": "x", "jobSpecs": {}}, timeout=10)
        assert bad_job.status_code == 400 and "jobSpecs" in bad_job.json()["error"]["message"]
        no_image = requests.post(parent, json={"displayName": "x"}, timeout=10)
        assert no_image.status_code == 400
        bad_list = requests.post(
            f"{fake.endpoint}/v2/entries:list", json={"filters": "x"}, timeout=10
        )
        assert bad_list.status_code == 400


def test_failed_job_reports_its_error(gcp):
    spec = vertex.custom_job_spec(gcp_outputs("gcp", gcp), DATA, OUTPUT, "r1", "gcp")
    with serve_vertex() as fake:
        fake.final_state, fake.error = "JOB_STATE_FAILED", "The replica workerpool0-0 exited with 1"
        jobs = _jobs(fake.endpoint)
        status = vertex.follow(jobs, jobs.create(spec), lambda _: None, sleep=lambda _: None)
    assert (status.state, status.error) == (
        "JOB_STATE_FAILED",
        "The replica workerpool0-0 exited with 1",
    )


def test_archive_is_uploaded_once(gcs_server, monkeypatch, tmp_path):
    for key, value in gcs_server.env().items():
        monkeypatch.setenv(key, value)
    bucket = f"gs://{gcs_server.create_bucket()}"
    archive = tmp_path / "tub.tar.zst"
    archive.write_bytes(b"archive bytes" * 1000)
    url, uploaded = runs.ensure_uploaded(archive, bucket)
    assert uploaded
    assert url == f"{bucket}/tubs/{runs.sha256_of(archive)[:16]}-tub.tar.zst"
    assert runs.ensure_uploaded(archive, bucket) == (url, False)
    archive.write_bytes(b"other bytes")  # changed content: a new object, the old one kept
    url2, uploaded2 = runs.ensure_uploaded(archive, bucket)
    assert uploaded2 and url2 != url


@pytest.fixture
def local_stack(s3_server, tmp_path) -> tuple[Path, str]:
    """A local stack's outputs (as `pulumi stack output` prints them) for the loopback S3 server."""
    bucket = s3_server.create_bucket()
    outputs = _outputs("dev", with_keys("dev", storage={"bucket": bucket}))
    outputs.update(s3Endpoint=s3_server.endpoint, s3AccessKeyId=s3_server.key,
                   s3SecretAccessKey=s3_server.secret)  # fmt: skip
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    return path, outputs["bucketUrl"]


def _finished_run(tmp_path: Path, run_url: str) -> dict[str, bytes]:
    """Write a run the way the trainer does (results, manifest, COMPLETE last)."""
    results = tmp_path / "results"
    files = {
        "pilot.h5": b"keras",
        "pilot.tflite": b"tflite",
        "loss.png": b"png",
        "history.json": b"{}",
    }
    results.mkdir()
    for name, data in files.items():
        (results / name).write_bytes(data)
    manifest = {
        "run_id": run_url.rsplit("/", 1)[-1],
        "model": "pilot.h5",
        "tflite": "pilot.tflite",
        "model_type": "linear",
        "outputs": train.upload_outputs(results, run_url),
    }
    train.mark_complete(run_url, manifest, tmp_path)
    return files


def test_fetch_downloads_a_finished_run(local_stack, s3_server, monkeypatch, tmp_path):
    outputs_file, bucket_url = local_stack
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    run_url = f"{bucket_url}/runs/donkeycar/20260101-000000-abc123"
    files = _finished_run(tmp_path, run_url)
    storage.write_text(f"{bucket_url}/runs/donkeycar/latest.json", json.dumps({"url": run_url}))
    for key in s3_server.env():
        monkeypatch.delenv(key)  # fetch must find the server from the stack's outputs alone
    for run in ("20260101-000000-abc123", "latest"):
        dest = tmp_path / f"fetched-{run}"
        result = CliRunner().invoke(
            app,
            [
                "donkey",
                "fetch",
                run,
                "--stack",
                "dev",
                "--outputs",
                str(outputs_file),
                "--to",
                str(dest),
            ],
        )
        assert result.exit_code == 0, result.output
        assert {p.name: p.read_bytes() for p in dest.iterdir() if p.name in files} == files
        assert "drive --model models/pilot.tflite --type tflite_linear\n" in result.output
        assert (dest / "run-manifest.json").exists()


def test_fetch_refuses_an_unfinished_run(local_stack, s3_server, monkeypatch, tmp_path):
    outputs_file, bucket_url = local_stack
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    storage.write_text(f"{bucket_url}/runs/donkeycar/r2/FAILED.txt", "TrainerError: no records\n")
    result = CliRunner().invoke(
        app,
        [
            "donkey",
            "fetch",
            "r2",
            "--stack",
            "dev",
            "--outputs",
            str(outputs_file),
            "--to",
            str(tmp_path / "x"),
        ],
    )
    assert result.exit_code == 1
    assert "is not a complete run (TrainerError: no records)" in " ".join(result.output.split())
    assert not (tmp_path / "x").exists()


def test_submit_refuses_a_local_stack(local_stack, tmp_path):
    outputs_file, _ = local_stack
    archive = tmp_path / "tub.tar.zst"
    archive.write_bytes(b"x")
    result = CliRunner().invoke(
        app, ["donkey", "submit", str(archive), "--stack", "dev", "--outputs", str(outputs_file)]
    )
    assert result.exit_code == 1
    assert "stack dev is local: train with `trackday donkey train --local`" in " ".join(
        result.output.split()
    )


def test_submit_checks_the_archive_against_the_model_type_before_uploading(gcp, tmp_path):
    from training.donkeycar.archive import create_archive
    from training.donkeycar.sample_tub import write_sample_tub

    create_archive([write_sample_tub(tmp_path / "data", records=5)], tmp_path / "a.tar.zst")
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(gcp))
    result = CliRunner().invoke(
        app,
        ["donkey", "submit", str(tmp_path / "a.tar.zst"), "--outputs", str(outputs),
         "--model-type", "imu", "--set", "MAX_EPOCHS=3"],
    )  # fmt: skip
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and "tub data lacks imu/acl_x" in said
    assert "uploaded" not in said
