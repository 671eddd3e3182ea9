"""`trackday dr droa`: against a loopback DeepRacer on AWS (droa_server.py), whose transit
bucket is a real S3 server; the run's own bucket is another bucket of it."""

from __future__ import annotations

import io
import json
import stat
import tarfile

import pytest
import yaml
from typer.testing import CliRunner

from tests.training.deepracer.droa_server import Droa, serve
from trackday import droa
from trackday.cli import app

runner = CliRunner()
USER, PASSWORD = "racer@example.com", "s3cret-Pass1"
WORLD = "2022_april_pro_cw"


@pytest.fixture
def site(s3_server, monkeypatch, tmp_path):
    deployment = Droa(s3_server, s3_server.create_bucket(), users={USER: PASSWORD})
    server, thread = serve(deployment)
    for variable in (
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", deployment.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY", deployment.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv(droa.PASSWORD_ENV, PASSWORD)
    monkeypatch.setattr(droa, "POLL_S", 0.01)
    yield deployment
    server.shutdown()
    thread.join()


def project(tmp_path, s3_server, site, **deepracer) -> list[str]:
    """A stack whose run `run-7` trained on WORLD, its objects in the local S3 server."""
    bucket = s3_server.create_bucket()
    values = {
        "modelPrefix": "run-7",
        "world": WORLD,
        "upload": {"droaUrl": site.url, "droaUsername": USER},
        **deepracer,
    }
    (tmp_path / "Pulumi.dr.yaml").write_text(
        yaml.safe_dump({"config": {"trackday:target": "local", "trackday:deepracer": values}})
    )
    (tmp_path / "outputs.json").write_text(
        json.dumps(
            {
                "target": "local",
                "bucketUrl": f"s3://{bucket}",
                "s3Endpoint": s3_server.endpoint,
                "s3EndpointInNetwork": "http://s3:9000",
                "s3AccessKeyId": s3_server.key,
                "s3SecretAccessKey": s3_server.secret,
                "s3Container": "unused",
            }
        )
    )
    client = s3_server.client()
    objects = {
        "run-7/model/model_metadata.json": b'{"action_space": [], "version": "5"}',
        "run-7/ip/hyperparameters.json": b'{"batch_size": 64}',
        "run-7/metrics/TrainingMetrics.json": b'{"metrics": []}',
        "custom_files/reward_function.py": b"def reward_function(p):\n    return 1.0\n",
        "run-7/model/deepracer_checkpoints.json": json.dumps(
            {
                "best_checkpoint": {
                    "name": "3_Step-90.ckpt",
                    "time_stamp": 1.5,
                    "avg_comp_pct": 80.0,
                },
                "last_checkpoint": {
                    "name": "4_Step-120.ckpt",
                    "time_stamp": 2.5,
                    "avg_comp_pct": 60.0,
                },
            }
        ).encode(),
    }
    for number, steps in ((3, 90), (4, 120)):
        for suffix in ("index", "meta", "data-00000-of-00001"):
            objects[f"run-7/model/{number}_Step-{steps}.ckpt.{suffix}"] = b"ckpt"
        objects[f"run-7/model/model_{number}.pb"] = b"graph"
    for key, body in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)
    return ["--stack", "dr", "--dir", str(tmp_path)]


def droa_cli(*args: str):
    return runner.invoke(app, ["dr", "droa", *args])


def test_import_model_end_to_end(tmp_path, s3_server, site):
    stack = project(tmp_path, s3_server, site)
    result = droa_cli("import-model", *stack, "--outputs", str(tmp_path / "outputs.json"), "--best")
    assert result.exit_code == 0, result.output
    (model_id,) = site.models
    assert site.models[model_id]["name"] == "run-7"
    listed = s3_server.client().list_objects_v2(Bucket=site.upload_bucket)["Contents"]
    keys = {item["Key"] for item in listed}
    (prefix,) = {k.split("/model/")[0] for k in keys if "/model/" in k}
    assert prefix.startswith("uploads/models/")
    assert {k.removeprefix(prefix + "/") for k in keys} == {
        "model_metadata.json",
        "reward_function.py",
        "training_params.yaml",
        "ip/hyperparameters.json",
        "metrics/TrainingMetrics.json",
        "model/model_metadata.json",
        "model/.coach_checkpoint",
        "model/deepracer_checkpoints.json",
        "model/model_3.pb",
        "model/3_Step-90.ckpt.index",
        "model/3_Step-90.ckpt.meta",
        "model/3_Step-90.ckpt.data-00000-of-00001",
    }
    got = droa_cli("get-model", model_id, *stack, "--json")
    assert got.exit_code == 0, got.output
    model = json.loads(got.output)
    assert model["status"] == "READY" and model["importErrorMessage"] is None
    assert model["trainingConfig"]["trackConfig"] == {
        "trackId": "2022_april_pro",
        "trackDirection": "CLOCKWISE",
    }
    # one sign-in: the second command used the cached credentials, readable by the user only
    (cache,) = (tmp_path / "cache" / "trackday" / "droa").iterdir()
    assert site.logins == 1 and stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert PASSWORD not in cache.read_text()


def test_list_get_and_delete(tmp_path, s3_server, site):
    for number, status in enumerate(("READY", "TRAINING", "ERROR")):
        model_id = f"MODEL{number:010d}"
        site.models[model_id] = {
            "modelId": model_id,
            "name": f"m-{number}",
            "status": status,
            "createdAt": f"2026-11-0{number + 1}T10:00:00Z",
        }
    listed = droa_cli("list-models", "--url", site.url, "--username", USER, "--json")
    assert listed.exit_code == 0, listed.output
    assert [m["name"] for m in json.loads(listed.output)] == ["m-2", "m-1", "m-0"]  # 2 pages
    busy = droa_cli("delete-model", "MODEL0000000001", "--url", site.url, "-u", USER, "--yes")
    assert busy.exit_code == 1 and "is TRAINING: only READY or ERROR" in busy.output
    typed = runner.invoke(
        app,
        ["dr", "droa", "delete-model", "MODEL0000000000", "--url", site.url, "-u", USER],
        input="m-0\n",
    )
    assert typed.exit_code == 0, typed.output
    assert sorted(site.models) == ["MODEL0000000001", "MODEL0000000002"]
    bad = droa_cli("get-model", "../../etc", "--url", site.url, "-u", USER)
    assert bad.exit_code == 1 and "is not a model id" in bad.output


def test_download_logs_waits_for_packaging(tmp_path, site, monkeypatch):
    site.models["MODEL0000000009"] = {"modelId": "MODEL0000000009", "status": "READY"}
    out = tmp_path / "logs.tar.gz"
    result = droa_cli(
        "download-logs", "MODEL0000000009", "--url", site.url, "-u", USER, "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    assert site.asset_polls == 2  # QUEUED first
    with tarfile.open(fileobj=io.BytesIO(out.read_bytes())) as tar:
        assert tar.extractfile("logs/training.log").read() == b"training log line 1\n"


def test_a_wrong_password_says_so_and_caches_nothing(tmp_path, site, monkeypatch):
    monkeypatch.setenv(droa.PASSWORD_ENV, "wrong")
    result = droa_cli("list-models", "--url", site.url, "-u", USER)
    assert result.exit_code == 1
    assert "refused the sign-in as racer@example.com: Incorrect username or password" in (
        " ".join(result.output.split())
    )
    assert not (tmp_path / "cache" / "trackday").exists()


def test_a_cache_others_can_read_is_not_trusted(tmp_path, site):
    assert droa_cli("list-models", "--url", site.url, "-u", USER).exit_code == 0
    (cache,) = (tmp_path / "cache" / "trackday" / "droa").iterdir()
    cache.chmod(0o644)
    assert droa_cli("list-models", "--url", site.url, "-u", USER).exit_code == 0
    assert site.logins == 2 and stat.S_IMODE(cache.stat().st_mode) == 0o600


def test_droa_refusals_reach_the_user(tmp_path, s3_server, site):
    """DRoA's import refuses SAC with a discrete action space; its words are shown."""
    stack = project(tmp_path, s3_server, site)
    s3_server.client().put_object(
        Bucket=json.loads((tmp_path / "outputs.json").read_text())["bucketUrl"][5:],
        Key="run-7/model/model_metadata.json",
        Body=b'{"training_algorithm": "sac", "action_space_type": "discrete"}',
    )
    result = droa_cli("import-model", *stack, "--outputs", str(tmp_path / "outputs.json"))
    assert result.exit_code == 1
    assert "SAC does not work with discrete action space" in " ".join(result.output.split())
    assert site.models == {}


def test_a_site_without_environment_config_is_named(site):
    assert droa._js_object("{region: 'x', \"a\": [1, 2,],}") == {"region": "x", "a": [1, 2]}
    with pytest.raises(droa.DroaError, match=r"holds no window\.EnvironmentConfig: is "):
        droa.fetch_config(site.url + "/assets/x")
    broken = droa_cli("list-models", "--url", site.url + "/nothing", "-u", USER)
    assert broken.exit_code == 1 and "cannot read" in broken.output
