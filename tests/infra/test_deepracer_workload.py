"""The DeepRacer run a stack keeps deployed (GitOps), under Pulumi's mocks.

The declared services must be the service data of training/deepracer/services.py, field
for field (the data `trackday dr start-training` deploys and tests/e2e deploys for real);
a bad reward function must stop the program before anything is declared. The run-files
resource's provider is run for real against `rclone serve s3` on loopback.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from infra import config, offline, program
from infra.config import ConfigError
from infra.plan import plan_stack
from infra.workloads import deepracer as deepracer_workload
from infra.workloads.deepracer import RunFilesProvider, service_args
from tests.infra.stacks import run_stack, shipped_values, with_keys
from tests.training.deepracer.dr_data import write_folder
from trackday.cli import app
from training.deepracer.bucket_io import PrefixTaken
from training.deepracer.params import Bucket, dump_params, training_params
from training.deepracer.services import NETWORK_LABELS, Site, run_services
from training.deepracer.settings import DeepRacerSettings

SERVICE = "docker:index/service:Service"
NETWORK = "docker:index/network:Network"
SECRET = "docker:index/secret:Secret"
CONTAINER = "docker:index/container:Container"
FILES = "pulumi-python:dynamic:Resource"
IN_NETWORK = Bucket("trackday", "us-east-1", "http://s3:9000")  # the dev stack's bucket
LOCAL = Site(IN_NETWORK, with_credentials=True, single_node=True)


def deepracer(folder: Path, **values) -> dict:
    return {
        "runId": 4,
        "workers": 3,
        "modelPrefix": "gitops-1",
        "customFilesDir": str(folder),
        "simulator": {"tag": "6.0.4-cpu"},
        **values,
    }


def stack_with(folder: Path, run: str, **values) -> dict:
    return with_keys("dev", deepracer=deepracer(folder, **values), deepracerRun=run)


def settings_of(folder: Path, **values) -> DeepRacerSettings:
    return DeepRacerSettings.model_validate(deepracer(folder, **values))


@pytest.fixture
def custom_files(tmp_path) -> Path:
    return write_folder(tmp_path / "custom_files")


def swarm_node(**labels: str) -> dict:
    """One node as the engine's `docker node ls` API lists it."""
    return {"Status": {"State": "ready"}, "Spec": {"Availability": "active", "Labels": labels}}


@pytest.fixture(autouse=True)
def local_swarm(monkeypatch) -> list:
    """The local engine as the program sees it: a swarm whose node is the trainer (a test
    may change the list, or make it None: no swarm)."""
    state = {"nodes": [swarm_node(**{"trackday.role": "trainer"})]}
    monkeypatch.setattr(deepracer_workload, "local_swarm_nodes", lambda: state["nodes"])
    return state


def by_name(run: offline.OfflineRun) -> dict[str, dict]:
    return {r.inputs["name"]: r.inputs for r in run.of_type(SERVICE)}


def test_training_declares_the_service_data_field_for_field(custom_files):
    run = run_stack("dev", stack_with(custom_files, "training"))
    (network,) = [n for n in run.of_type(NETWORK) if n.inputs.get("name") == "sagemaker-local"]
    assert (network.inputs["name"], network.inputs["driver"], network.inputs["attachable"]) == (
        "sagemaker-local",
        "overlay",
        True,
    )
    secret = run.one(SECRET)
    assert secret.inputs["name"] == "trackday-dr-4-s3" and secret.secret_inputs == ("data",)
    specs = run_services(settings_of(custom_files), LOCAL, "training")
    declared = by_name(run)
    assert sorted(declared) == sorted(s.name for s in specs)
    for spec in specs:
        service = declared[spec.name]
        task = service["taskSpec"]
        container = task["containerSpec"]
        assert container["image"] == spec.image
        assert spec.image == "awsdeepracercommunity/deepracer-simapp:6.0.4-cpu"
        assert container["args"] == list(spec.args)
        assert container["env"] == dict(spec.env)
        assert container.get("dir") == spec.working_dir
        assert container.get("init", False) == spec.init
        assert [(m["source"], m["target"], m["type"]) for m in container.get("mounts", [])] == [
            (m.source, m.target, m.type) for m in spec.mounts
        ]
        assert [(s["secretName"], s["fileName"], s["secretId"]) for s in container["secrets"]] == [
            (s.secret, s.file, f"{secret.name}-id") for s in spec.secrets
        ]
        assert {item["label"]: item["value"] for item in container["labels"]} == dict(spec.labels)
        assert task["placement"]["constraints"] == list(spec.constraints)
        assert task["restartPolicy"] == {"condition": "none"}
        assert task["networksAdvanceds"] == [{"id": f"{network.name}-id"}]
        assert service["mode"] == {"replicated": {"replicas": spec.replicas}}
        assert {item["label"]: item["value"] for item in service["labels"]} == dict(spec.labels)
    trainer = declared["trackday-dr-4-trainer"]["taskSpec"]["containerSpec"]
    assert {m["target"] for m in trainer["mounts"]} == {"/var/run/docker.sock", "/tmp/sagemaker"}
    assert declared["trackday-dr-4-simulation"]["mode"]["replicated"]["replicas"] == 3


@pytest.mark.parametrize("run", ["training", "evaluation", None])
def test_the_local_s3_server_joins_the_runs_network_as_s3_exactly_when_a_run_is_asked(
    custom_files, run
):
    """The services are told http://s3:9000: the S3 container must be on their network under
    that name, and the network has one owner (the local target), whoever deploys onto it."""
    values = (
        stack_with(custom_files, run)
        if run
        else with_keys("dev", deepracer=deepracer(custom_files))
    )
    stack = run_stack("dev", values)
    named = [n for n in stack.of_type(NETWORK) if n.inputs.get("name") == "sagemaker-local"]
    networks = stack.one(CONTAINER).inputs["networksAdvanced"]
    own = {"name": "trackday-dev-s3-net", "aliases": ["s3"]}
    if run is None:
        assert named == [] and networks == [own]
        return
    (network,) = named
    assert (network.inputs["driver"], network.inputs["attachable"]) == ("overlay", True)
    labels = {item["label"]: item["value"] for item in network.inputs["labels"]}
    assert labels | NETWORK_LABELS == labels  # Compose v2 in the trainer checks them
    by_urn = {r.urn: r for r in stack.resources}
    assert by_urn[network.parent].type == "trackday:targets:Local"
    assert networks == [own, {"name": "sagemaker-local", "aliases": ["s3"]}]
    for service in stack.of_type(SERVICE):
        assert service.inputs["taskSpec"]["networksAdvanceds"] == [{"id": f"{network.name}-id"}]
    assert stack.one(CONTAINER).inputs["ports"] == [
        {"internal": 9000, "external": 9000, "ip": "127.0.0.1"}
    ]  # still loopback only
    assert stack.outputs["s3Container"].value == "trackday-dev-s3-server"


def test_the_run_files_carry_the_custom_files_and_keys_stay_secret(custom_files):
    run = run_stack("dev", stack_with(custom_files, "training"))
    files = run.one(FILES)
    assert files.inputs["job"] == "training" and files.inputs["bucketUrl"] == "s3://trackday"
    assert (
        files.inputs["customFiles"]["reward_function.py"]
        == (custom_files / "reward_function.py").read_text()
    )
    assert "storageEnv" in files.secret_inputs  # (Pulumi also keeps its provider secret)
    by_urn = {r.urn: r for r in run.resources}
    for resource in (files, *run.of_type(SERVICE), run.one(SECRET)):
        assert by_urn[resource.parent].type == "trackday:workloads:DeepRacerRun"
    leaks = [
        r.name
        for r in run.resources
        for o in run.outputs.values()
        if o.secret and str(o.value) in repr(r.inputs)
    ]
    assert leaks == []
    assert run.outputs["deepracerServices"].value == [
        "trackday-dr-4-trainer",
        "trackday-dr-4-simulation",
    ]


def test_evaluation_is_its_own_deployment(custom_files):
    run = run_stack("dev", stack_with(custom_files, "evaluation"))
    (spec,) = run_services(settings_of(custom_files), LOCAL, "evaluation")
    assert list(by_name(run)) == [spec.name] == ["trackday-dr-eval-4-simulation"]
    assert by_name(run)[spec.name]["taskSpec"]["containerSpec"]["env"] == dict(spec.env)
    assert run.one(SECRET).inputs["name"] == "trackday-dr-eval-4-s3"
    assert run.one(FILES).inputs["job"] == "evaluation"


def test_no_run_requested_declares_no_deepracer_resource(custom_files):
    values = with_keys("dev", deepracer=deepracer(custom_files))
    run = run_stack("dev", values)
    assert not run.of_type(SERVICE) and not run.of_type(FILES)
    assert len(run.resources) == len(run_stack("dev", shipped_values("dev")).resources)


def declared_before_failure(values: dict) -> tuple[list, list[str]]:
    """What the program declared before it raised, and the error (the program runs under
    the mocks exactly as `pulumi up` runs it; the failure is caught only to look)."""
    errors: list[str] = []

    def build():
        try:
            return program.build(config.load())
        except ConfigError as error:
            errors.append(str(error))
            return {}

    run = offline.run_offline(build, "dev", offline.stack_config(values))
    return run.resources, errors


def test_a_bad_reward_function_fails_before_anything_is_declared(custom_files):
    # Imports are DRoA's concern (a warning); a missing reward_function breaks training.
    (custom_files / "reward_function.py").write_text("def reward(params):\n    return 1.0\n")
    resources, errors = declared_before_failure(stack_with(custom_files, "training"))
    assert resources == []
    (error,) = errors
    assert error.startswith(f"trackday:deepracer.customFilesDir: '{custom_files}' is not valid;")
    assert "fix the custom files first" in error and "no reward_function defined" in error


@pytest.mark.parametrize("job", ["training", "evaluation"])
def test_a_local_run_without_a_swarm_is_refused_before_anything(custom_files, local_swarm, job):
    """Without swarm mode `pulumi up` would fail midway or leave tasks pending silently."""
    local_swarm["nodes"] = None
    resources, errors = declared_before_failure(stack_with(custom_files, job))
    assert resources == [] and errors == [
        f"trackday:deepracerRun: '{job}' is not valid; this machine's Docker engine is not a "
        "swarm manager: run `docker swarm init --advertise-addr 127.0.0.1`, then `docker node "
        "update --label-add trackday.role=trainer $(docker node ls -q)`"
    ]


def test_a_local_swarm_without_the_trainer_label_is_refused(custom_files, local_swarm):
    local_swarm["nodes"] = [
        swarm_node(**{"trackday.role": "simulation"}),
        {**swarm_node(**{"trackday.role": "trainer"}), "Status": {"State": "down"}},
    ]
    resources, errors = declared_before_failure(stack_with(custom_files, "training"))
    assert resources == [] and errors == [
        "trackday:deepracerRun: 'training' is not valid; no ready node is labelled "
        "trackday.role=trainer, which `node.labels.trackday.role==trainer` needs: `docker node "
        "update --label-add trackday.role=trainer $(docker node ls -q)` on the manager"
    ]


def test_local_swarm_nodes_reads_the_engine(monkeypatch):
    """No engine at all reads as no swarm (the message then says how to make one)."""
    monkeypatch.undo()
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    assert deepracer_workload.local_swarm_nodes() is None


def test_a_run_without_deepracer_settings_is_refused():
    resources, errors = declared_before_failure(with_keys("dev", deepracerRun="training"))
    assert resources == [] and errors == [
        "trackday:deepracerRun: 'training' is not valid; a run needs the trackday:deepracer "
        "section (`trackday dr import` writes one from a DRfC folder)"
    ]
    with pytest.raises(ConfigError, match="deepracerRun: 'race' is not valid"):
        config.parse({"deepracerRun": "race"})


def test_a_swarm_target_without_a_docker_provider_points_to_the_cli(custom_files):
    values = {
        **shipped_values("aws"),
        "trackday:deepracer": deepracer(custom_files),
        "trackday:deepracerRun": "training",
    }
    _, errors = declared_before_failure(values)
    assert errors == [
        "trackday:deepracerRun: 'training' is not valid; the aws target gives Pulumi no Docker "
        "provider for its swarm manager yet; leave deepracerRun unset and run "
        "`trackday dr start-training --stack dev`"
    ]


def test_plan_reports_the_bad_reward_function(custom_files, tmp_path):
    (custom_files / "reward_function.py").write_text("def reward(params):\n    return 1.0\n")
    (tmp_path / "Pulumi.bad.yaml").write_text(
        yaml.safe_dump({"config": stack_with(custom_files, "training")})
    )
    result = CliRunner().invoke(app, ["plan", "--stack", "bad", "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "error: trackday:deepracer.customFilesDir" in result.output
    assert "reward_function" in result.output


def test_plan_prices_a_stack_with_a_run_completely(custom_files, tmp_path):
    """The run files are a dynamic resource: free, not reported as unpriced."""
    (tmp_path / "Pulumi.run.yaml").write_text(
        yaml.safe_dump({"config": stack_with(custom_files, "training")})
    )
    plan = plan_stack(tmp_path, "run")
    assert [r.type for r in plan.run.resources].count(FILES) == 1
    assert plan.costs.complete, plan.costs.unpriced


def test_run_files_provider_writes_the_run_files(s3_server, custom_files):
    """The provider `pulumi up` runs, for real, against an S3 server on loopback."""
    bucket_name = s3_server.create_bucket()
    settings = settings_of(custom_files, evaluation={"saveMp4": True})
    props = {
        "job": "training",
        "settings": settings.model_dump(mode="json"),
        "bucket": {"name": bucket_name, "region": "us-east-1", "endpoint_url": "http://s3:9000"},
        "bucketUrl": f"s3://{bucket_name}",
        "customFiles": {p.name: p.read_text() for p in custom_files.iterdir()},
        "storageEnv": {
            "AWS_ENDPOINT_URL": s3_server.endpoint,
            "AWS_ACCESS_KEY_ID": s3_server.key,
            "AWS_SECRET_ACCESS_KEY": s3_server.secret,
        },
    }
    created = RunFilesProvider().create(props)
    assert created.id == f"s3://{bucket_name}/gitops-1"
    assert "storageEnv" not in created.outs
    client = s3_server.client()

    def read(key: str) -> bytes:
        return client.get_object(Bucket=bucket_name, Key=key)["Body"].read()

    assert created.outs["keys"] == sorted(
        [
            "custom_files/reward_function.py",
            "custom_files/model_metadata.json",
            "custom_files/hyperparameters.json",
            "gitops-1/reward_function.py",
            "gitops-1/training_params.yaml",
        ]
    )
    assert read("gitops-1/training_params.yaml").decode() == dump_params(
        training_params(settings, Bucket(bucket_name, "us-east-1", "http://s3:9000"))
    )
    assert (
        read("custom_files/reward_function.py")
        == (custom_files / "reward_function.py").read_bytes()
    )

    updated = RunFilesProvider().update(created.id, created.outs, {**props, "job": "evaluation"})
    stamp = updated.outs["stamp"]
    assert updated.outs["keys"] == ["gitops-1/evaluation_params.yaml"]
    params = yaml.safe_load(read("gitops-1/evaluation_params.yaml"))
    assert params["SIMTRACE_S3_PREFIX"] == [f"gitops-1/evaluation-{stamp}"]
    assert params["MP4_S3_OBJECT_PREFIX"] == ["gitops-1/mp4"]


def test_run_files_provider_refuses_a_prefix_holding_a_model_unless_wiped(s3_server, custom_files):
    """A leftover `model/.finished` makes the workers stop at once and old checkpoints mix
    in: GitOps refuses the prefix as `dr start-training` does without --wipe."""
    bucket_name = s3_server.create_bucket()
    client = s3_server.client()
    client.put_object(Bucket=bucket_name, Key="gitops-1/model/.finished", Body=b"")

    def props(**training) -> dict:
        return {
            "job": "training",
            "bucketUrl": f"s3://{bucket_name}",
            "settings": settings_of(custom_files, training=training).model_dump(mode="json"),
            "bucket": {"name": bucket_name, "region": "us-east-1", "endpoint_url": None},
            "customFiles": {p.name: p.read_text() for p in custom_files.iterdir()},
            "storageEnv": {
                "AWS_ENDPOINT_URL": s3_server.endpoint,
                "AWS_ACCESS_KEY_ID": s3_server.key,
                "AWS_SECRET_ACCESS_KEY": s3_server.secret,
            },
        }

    def keys() -> set[str]:
        listed = client.list_objects_v2(Bucket=bucket_name, Prefix="gitops-1/")
        return {item["Key"] for item in listed.get("Contents", [])}

    with pytest.raises(
        PrefixTaken,
        match=rf"s3://{bucket_name}/gitops-1 exists \(1 objects\): "
        "pick a new modelPrefix, or set trackday:deepracer.training.wipe: true",
    ):
        RunFilesProvider().create(props())
    assert keys() == {"gitops-1/model/.finished"}
    created = RunFilesProvider().create(props(wipe=True))
    assert keys() == {"gitops-1/reward_function.py", "gitops-1/training_params.yaml"}
    # the running run's own prefix on a later `pulumi up`: its model is left as it is
    client.put_object(Bucket=bucket_name, Key="gitops-1/model/model_1.pb", Body=b"")
    RunFilesProvider().update(created.id, created.outs, props())
    assert "gitops-1/model/model_1.pb" in keys()
    # a switch from evaluation to training on the same prefix is a new start
    evaluated = {**created.outs, "job": "evaluation"}
    with pytest.raises(PrefixTaken):
        RunFilesProvider().update(created.id, evaluated, props())


def test_a_gpu_reservation_reaches_pulumi_as_a_generic_resource(custom_files):
    """What the CLI reserves with the docker SDK, the program declares the same way."""
    chosen = settings_of(custom_files, simulator={"tag": "6.0.4-gpu"})
    trainer, workers = run_services(chosen, Site(IN_NETWORK, gpu_nodes=True), "training")
    declared = service_args(trainer, {}, {"sagemaker-local": "net"})
    reservation = declared["task_spec"].resources.reservation
    assert reservation.generic_resources.discrete_resources_specs == ["GPU=1"]
    assert (
        service_args(replace(workers, gpus=0), {}, {"sagemaker-local": "net"})[
            "task_spec"
        ].resources
        is None
    )


def test_a_warning_about_the_custom_files_does_not_stop_the_program(custom_files):
    """The simulator ignores unknown hyperparameters: said, not refused."""
    (custom_files / "hyperparameters.json").write_text('{"batch_size": 64, "lr_decay": 0.9}')
    resources, errors = declared_before_failure(stack_with(custom_files, "training"))
    assert errors == [] and any(r.type == SERVICE for r in resources)
