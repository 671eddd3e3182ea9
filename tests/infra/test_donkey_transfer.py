"""`trackday donkey submit --transfer MODEL` (and `--myconfig FILE`, `--comment`): the starting
model reaches the bucket and the job.

The whole command runs against stand-ins on 127.0.0.1: Google Cloud Storage is
gcp-storage-emulator, Vertex AI the strict stand-in of tests/infra/vertex_server.py (jobs
parsed into the SDK's own proto types), reached through the real google-cloud-aiplatform
client. What the trainer does with the URL is tests/trainer/test_transfer.py's; the Swarm
job's argument is checked in tests/infra/test_swarm_training.py and end to end in
tests/e2e/test_donkey_submit_swarm.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials
from google.auth.transport.requests import AuthorizedSession
from google.cloud import aiplatform_v1
from typer.testing import CliRunner

from tests.infra.stacks import run_stack, shipped_values
from tests.infra.vertex_server import VertexFake, serve_vertex
from trackday import vertex
from trackday.cli import app
from training import storage
from training.donkeycar import train
from training.donkeycar.archive import create_archive
from training.donkeycar.sample_tub import write_sample_tub

OLD_RUN = "20260101-000000-abc123"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tub")
    path = root / "data.tar.zst"
    create_archive([write_sample_tub(root / "data", records=5)], path)
    return path


@pytest.fixture
def stack(gcs_server, monkeypatch, tmp_path) -> tuple[Path, str]:
    """The gcp stack's outputs with a fresh bucket on the GCS emulator: (file, bucket URL)."""
    for key, value in gcs_server.env().items():
        monkeypatch.setenv(key, value)
    outputs = {k: o.value for k, o in run_stack("gcp", shipped_values("gcp")).outputs.items()}
    outputs["bucketUrl"] = f"gs://{gcs_server.create_bucket()}"
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    return path, outputs["bucketUrl"]


@pytest.fixture
def vertex_ai(monkeypatch) -> Iterator[VertexFake]:
    """`submit` talks to the Vertex AI stand-in, with anonymous credentials."""
    real = vertex.VertexJobs
    with serve_vertex() as fake:

        def jobs(project: str, region: str) -> vertex.VertexJobs:
            client = aiplatform_v1.JobServiceClient(
                transport="rest",
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": fake.endpoint},
            )
            logs = AuthorizedSession(AnonymousCredentials())
            return real(project, region, client, logs, fake.endpoint)

        monkeypatch.setattr(vertex, "VertexJobs", jobs)
        yield fake


def _submit(archive: Path, outputs: Path, transfer: str):
    argv = ["donkey", "submit", str(archive), "--outputs", str(outputs), "--no-follow"]
    return CliRunner().invoke(app, [*argv, "--transfer", transfer])


def _job_args(fake: VertexFake) -> list[str]:
    [job] = fake.created
    return job["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["args"]


def _arg(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def _finished_run(bucket_url: str, tmp_path: Path) -> None:
    """A run in the bucket as the trainer leaves it, its model a .savedmodel folder."""
    results = tmp_path / "results"
    for rel in ("pilot.savedmodel/saved_model.pb", "pilot.savedmodel/variables/v.index"):
        (results / rel).parent.mkdir(parents=True, exist_ok=True)
        (results / rel).write_bytes(rel.encode())
    (results / "pilot.tflite").write_bytes(b"tflite")
    run_url = f"{bucket_url}/runs/donkeycar/{OLD_RUN}"
    outputs = train.upload_outputs(results, run_url)
    train.mark_complete(run_url, {"model": "pilot.savedmodel", "outputs": outputs}, tmp_path)
    latest = json.dumps({"url": run_url})
    storage.write_text(f"{bucket_url}/runs/donkeycar/latest.json", latest)


def test_a_model_file_here_is_uploaded_into_the_run_and_passed_to_the_job(
    archive, stack, vertex_ai, tmp_path
) -> None:
    outputs, bucket_url = stack
    model = tmp_path / "old pilot.h5"
    model.write_bytes(b"keras weights" * 1000)
    result = _submit(archive, outputs, str(model))
    assert result.exit_code == 0, result.output
    args = _job_args(vertex_ai)
    run_id = _arg(args, "--run-id")
    url = f"{bucket_url}/runs/donkeycar/{run_id}/transfer/old pilot.h5"
    assert _arg(args, "--transfer") == url
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    assert storage.checksum(url) == digest  # verified and sidecar written
    assert storage.download(url, tmp_path / "back.h5") == digest


def test_a_savedmodel_folder_is_uploaded_file_by_file(archive, stack, vertex_ai, tmp_path):
    outputs, bucket_url = stack
    model = tmp_path / "pilot.savedmodel"
    (model / "variables").mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"graph")
    (model / "variables" / "variables.index").write_bytes(b"index")
    result = _submit(archive, outputs, str(model))
    assert result.exit_code == 0, result.output
    url = _arg(_job_args(vertex_ai), "--transfer")
    assert url.startswith(f"{bucket_url}/runs/donkeycar/") and url.endswith(
        "/transfer/pilot.savedmodel"
    )
    for rel in ("saved_model.pb", "variables/variables.index"):
        expected = hashlib.sha256((model / rel).read_bytes()).hexdigest()
        assert storage.checksum(f"{url}/{rel}") == expected


@pytest.mark.parametrize(
    "given",
    [
        "latest",
        OLD_RUN,
        f"runs/donkeycar/{OLD_RUN}",
        f"runs/donkeycar/{OLD_RUN}/pilot.savedmodel",
        "{bucket}/runs/donkeycar/" + OLD_RUN,
    ],
)
def test_a_previous_runs_model_is_passed_as_it_is_in_the_bucket(
    archive, stack, vertex_ai, tmp_path, given: str
) -> None:
    outputs, bucket_url = stack
    _finished_run(bucket_url, tmp_path)
    result = _submit(archive, outputs, given.format(bucket=bucket_url))
    assert result.exit_code == 0, result.output
    args = _job_args(vertex_ai)
    expected = f"{bucket_url}/runs/donkeycar/{OLD_RUN}/pilot.savedmodel"
    assert _arg(args, "--transfer") == expected
    assert not storage.list_files(f"{bucket_url}/runs/donkeycar/{_arg(args, '--run-id')}")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("nope.h5", "--transfer nope.h5: no such file or folder here, and not a model in"),
        ("{tmp}/pilot.tflite", "pilot.tflite: .tflite file extension; give a .h5 or .keras"),
        ("{tmp}/linked.savedmodel", "linked.savedmodel/variables is a link or special file"),
        ("{bucket}/tubs/pilot.h5", "/tubs/pilot.h5 is outside the stack's runs (gs://"),
        ("gs://elsewhere/runs/donkeycar/r1/pilot.h5", "is outside the stack's runs"),
        ("runs/donkeycar/../tubs/x.h5", "'..' is not a run id"),
        (f"runs/donkeycar/{OLD_RUN}/../../x.h5", "unsafe output name '../../x.h5'"),
        (f"runs/donkeycar/{OLD_RUN}/other.h5", "wrote no other.h5 (its models: pilot.savedmodel)"),
        ("20990101-000000-ffffff", "20990101-000000-ffffff is not a complete run (no result yet)"),
    ],
)
def test_unusable_transfer_models_are_refused_before_any_job(
    archive, stack, vertex_ai, tmp_path, given: str, expected: str
) -> None:
    outputs, bucket_url = stack
    _finished_run(bucket_url, tmp_path)
    (tmp_path / "pilot.tflite").write_bytes(b"tflite")
    (tmp_path / "linked.savedmodel").mkdir()
    (tmp_path / "linked.savedmodel" / "variables").symlink_to(tmp_path)  # a folder out of it
    result = _submit(archive, outputs, given.format(tmp=tmp_path, bucket=bucket_url))
    assert result.exit_code == 1
    said = " ".join(result.output.split())
    assert "error: " in said and expected in said, said
    assert vertex_ai.created == []


def test_myconfig_and_comment_reach_the_job(archive, stack, vertex_ai, tmp_path) -> None:
    """`donkey train --myconfig FILE --comment TEXT`, per run on the cloud."""
    outputs, bucket_url = stack
    myconfig = tmp_path / "race.py"
    myconfig.write_text("MAX_EPOCHS = 3\n")
    argv = ["donkey", "submit", str(archive), "--outputs", str(outputs), "--no-follow"]
    argv += ["--myconfig", str(myconfig), "--comment", "week 3"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    args = _job_args(vertex_ai)
    url = f"{bucket_url}/runs/donkeycar/{_arg(args, '--run-id')}/myconfig.py"
    assert _arg(args, "--myconfig") == url and _arg(args, "--comment") == "week 3"
    assert storage.checksum(url) == hashlib.sha256(myconfig.read_bytes()).hexdigest()


def test_myconfig_model_type_is_checked_against_the_archive(archive, stack, vertex_ai, tmp_path):
    outputs, _ = stack
    myconfig = tmp_path / "myconfig.py"
    myconfig.write_text("DEFAULT_MODEL_TYPE = 'imu'\n")
    argv = ["donkey", "submit", str(archive), "--outputs", str(outputs), "--no-follow"]
    result = CliRunner().invoke(app, [*argv, "--myconfig", str(myconfig)])
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and "tub data lacks imu/acl_x" in said
    assert "uploaded" not in said and vertex_ai.created == []


def test_a_job_refused_after_the_upload_leaves_its_reason_in_the_run(
    archive, stack, vertex_ai, tmp_path
) -> None:
    """The run folder holds the uploaded model: it says why no job came, not "running"."""
    outputs, bucket_url = stack
    vertex_ai.errors["create"] = (403, "aiplatform.customJobs.create denied")
    model = tmp_path / "pilot.h5"
    model.write_bytes(b"keras")
    assert _submit(archive, outputs, str(model)).exit_code == 1
    [failed] = [
        url for url in storage.list_files(f"{bucket_url}/runs/donkeycar") if "FAILED" in url
    ]
    reason = storage.read_text(failed)
    assert reason.startswith("VertexError: permission denied") and reason.endswith("denied)\n")
    argv = ["donkey", "submit", str(archive), "--outputs", str(outputs), "--no-follow"]
    assert CliRunner().invoke(app, argv).exit_code == 1  # no upload into the run: no folder
    listed = storage.list_files(f"{bucket_url}/runs/donkeycar")
    assert {url.split("/runs/donkeycar/")[1].split("/")[0] for url in listed} == {
        failed.split("/")[-2]
    }
