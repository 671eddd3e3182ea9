"""DeepRacer runs deployed for real on this machine's engine, as `trackday dr start-*` does.

The engine is a single-node swarm (made one if it is not; others share it, so it never
leaves it) whose node is labelled trainer. The simulator image cannot be pulled here, so a
stand-in made from Debian's busybox-static carries the simulator's name and tag: the
service specs are exactly production's. Its entry script prints what the real image would
rely on (arguments, replica slot, Docker socket, SageMaker folder, credentials file) and
sleeps. The bucket is `rclone serve s3` on loopback; the stack's S3 server container, which
the runs' services must reach as `s3`, is a busybox httpd made the same way, on a private
bridge network published on loopback as the local target's is. Every test checks nothing is
left.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
import time
from pathlib import Path

import docker
import pytest
import yaml
from docker.types import RestartPolicy
from typer.testing import CliRunner

from contract.swarm import RUN_LABEL, WORKLOAD_LABEL, s3_credentials_file
from tests.e2e.images import import_busybox
from tests.training.deepracer.dr_data import write_folder, write_run
from trackday.cli import app
from trackday.dr_network import ensure_network
from trackday.dr_runs import RunError, check_placement
from training.deepracer.params import Bucket, dump_params, training_params
from training.deepracer.services import NETWORK, Site, run_services
from training.deepracer.settings import DeepRacerSettings

pytestmark = pytest.mark.timeout(600)
docker_test = pytest.mark.docker

SIMULATOR_TAG = "6.0.4-cpu"
APPLETS = ("sh", "echo", "test", "sleep", "sha256sum", "cat")
ENTRY = """\
echo "args: $*"
echo "slot: $DOCKER_REPLICA_SLOT"
test -S /var/run/docker.sock && echo "docker socket: yes"
test -d /tmp/sagemaker && echo "sagemaker dir: yes"
creds="$AWS_SHARED_CREDENTIALS_FILE"
test -f "$creds" && echo "credentials: $(sha256sum < "$creds")"
echo ready
exec sleep 600
"""
IN_NETWORK_ENDPOINT = "http://s3:9000"
S3_CONTAINER = f"trackday-e2e-s3-{os.getpid()}"
S3_IMAGE = "trackday-e2e-s3:busybox"
PROBE = b"served by the stack's S3 container\n"
runner = CliRunner()


@pytest.fixture(scope="module")
def simulator_image(swarm: docker.DockerClient):
    """The stand-in, under the simulator's own name and tag; removed afterwards."""
    reference = DeepRacerSettings(simulator={"tag": SIMULATOR_TAG}).simulator.reference
    import_busybox(
        swarm, reference, APPLETS, {"entry.sh": ENTRY.encode()}, '["/bin/sh", "/entry.sh"]'
    )
    yield reference
    swarm.api.remove_image(reference, force=True)


@pytest.fixture(scope="module")
def s3_container(swarm: docker.DockerClient):
    """The stack's S3 server as the local target makes it (a container on a private bridge
    network as `s3`, published on loopback only), with httpd serving /www on port 9000 in
    its stead; the image has wget too, for probes from the runs' network."""
    import_busybox(
        swarm,
        S3_IMAGE,
        ("sh", "httpd", "wget"),
        {"www/probe.txt": PROBE},
        '["/bin/httpd", "-f", "-p", "9000", "-h", "/www"]',
    )
    network = swarm.networks.create(
        f"{S3_CONTAINER}-net",
        driver="bridge",
        options={"com.docker.network.bridge.host_binding_ipv4": "127.0.0.1"},
    )
    try:
        swarm.api.create_container(
            S3_IMAGE,
            name=S3_CONTAINER,
            ports=[9000],
            host_config=swarm.api.create_host_config(port_bindings={9000: ("127.0.0.1",)}),
            networking_config=swarm.api.create_networking_config(
                {network.name: swarm.api.create_endpoint_config(aliases=["s3"])}
            ),
        )
        container = swarm.containers.get(S3_CONTAINER)
        container.start()
        yield container
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            swarm.containers.get(S3_CONTAINER).remove(force=True)
        network.remove()
        swarm.api.remove_image(S3_IMAGE, force=True)


class Project:
    """A Pulumi project folder with stack files and the outputs of a deployed local stack."""

    def __init__(self, root: Path, s3_server, bucket: str):
        self.root, self.server, self.bucket = root, s3_server, bucket
        self.outputs = root / "outputs.json"
        self.outputs.write_text(
            json.dumps(
                {
                    "target": "local",
                    "bucketUrl": f"s3://{bucket}",
                    "s3Endpoint": s3_server.endpoint,
                    "s3EndpointInNetwork": IN_NETWORK_ENDPOINT,
                    "network": "trackday-dev-s3-net",
                    "s3AccessKeyId": s3_server.key,
                    "s3SecretAccessKey": s3_server.secret,
                    "s3Container": S3_CONTAINER,
                    "image": "trackday-donkeycar:5.3.0",
                }
            )
        )
        write_folder(root / "custom_files")

    def stack(self, name: str, **deepracer) -> DeepRacerSettings:
        values = {"simulator": {"tag": SIMULATOR_TAG}, **deepracer}
        (self.root / f"Pulumi.{name}.yaml").write_text(
            yaml.safe_dump({"config": {"trackday:target": "local", "trackday:deepracer": values}})
        )
        return DeepRacerSettings.model_validate(values)

    def dr(self, command: str, stack: str, *args: str):
        return runner.invoke(
            app,
            [
                "dr",
                command,
                "--stack",
                stack,
                "--dir",
                str(self.root),
                "--outputs",
                str(self.outputs),
                *args,
            ],
        )

    @property
    def local_site(self) -> Site:
        """The services' view of the local target: keys as a secret, one node."""
        return Site(self.containers_bucket, with_credentials=True, single_node=True)

    @property
    def containers_bucket(self) -> Bucket:
        return Bucket(self.bucket, endpoint_url=IN_NETWORK_ENDPOINT)

    def objects(self) -> set[str]:
        listed = self.server.client().list_objects_v2(Bucket=self.bucket)
        return {item["Key"] for item in listed.get("Contents", [])}

    def read(self, key: str) -> bytes:
        return self.server.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()


@pytest.fixture
def project(tmp_path, s3_server, monkeypatch) -> Project:
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    return Project(tmp_path, s3_server, s3_server.create_bucket())


def services_of(client, run_id: int) -> dict[str, dict]:
    found = client.api.services(
        filters={"label": [f"{WORKLOAD_LABEL}=deepracer", f"{RUN_LABEL}={run_id}"]}
    )
    return {s["Spec"]["Name"]: s for s in found}


def wait_running(client, service: dict, timeout_s: float = 90) -> list[dict]:
    want = service["Spec"]["Mode"]["Replicated"]["Replicas"]
    deadline = time.monotonic() + timeout_s
    while True:
        tasks = [
            t
            for t in client.api.tasks(filters={"service": service["ID"]})
            if t["Status"]["State"] == "running"
        ]
        if len(tasks) == want:
            return tasks
        if time.monotonic() > deadline:
            states = [t["Status"] for t in client.api.tasks(filters={"service": service["ID"]})]
            pytest.fail(f"{service['Spec']['Name']}: {len(tasks)}/{want} running: {states}")
        time.sleep(0.5)


def left_behind(client, run_ids: tuple[int, ...], image: str) -> list[str]:
    """Services, secrets and containers of these runs (or of the stand-in image) still there."""
    found = []
    for run_id in run_ids:
        label = {"label": [f"{WORKLOAD_LABEL}=deepracer", f"{RUN_LABEL}={run_id}"]}
        found += [s["Spec"]["Name"] for s in client.api.services(filters=label)]
        found += [s["Spec"]["Name"] for s in client.api.secrets(filters=label)]
    found += [c.name for c in client.containers.list(all=True, filters={"ancestor": image})]
    return found


def write_metrics(folder: Path, prefix: str) -> dict[str, bytes]:
    """A run's metrics as the simulator writes them (tests/training/deepracer/dr_data.py)."""
    run = write_run(folder, prefix)
    return {
        p.relative_to(run.parent).as_posix(): p.read_bytes()
        for p in (run / "metrics").rglob("*")
        if p.is_file()
    }


def fake_sagemaker(client, image: str, model_prefix: str):
    """What SageMaker local mode starts for a trainer: a compose service `algo-1-*` on the
    shared network, its hyperparameters (JSON-encoded values) in /opt/ml/input/config."""
    container = client.containers.create(
        image,
        name=f"tmp{hashlib.sha256(model_prefix.encode()).hexdigest()[:8]}-algo-1-x",
        labels={"com.docker.compose.service": "algo-1-x", "com.docker.compose.project": "tmp"},
        network=NETWORK,
    )
    hyper = json.dumps({"s3_prefix": json.dumps(model_prefix), "s3_bucket": '"b"'}).encode()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for folder in ("opt", "opt/ml", "opt/ml/input", "opt/ml/input/config"):
            item = tarfile.TarInfo(folder)
            item.type = tarfile.DIRTYPE
            tar.addfile(item)
        item = tarfile.TarInfo("opt/ml/input/config/hyperparameters.json")
        item.size = len(hyper)
        tar.addfile(item, io.BytesIO(hyper))
    container.put_archive("/", archive.getvalue())
    container.start()
    return container


def spec_of(service: dict) -> dict:
    return service["Spec"]["TaskTemplate"]


def probe_s3(client: docker.DockerClient, timeout_s: float = 90) -> tuple[str, bytes]:
    """A one-shot service on the runs' network fetching a file from the in-network endpoint,
    as the simulator would; its task's final state and its output. Removed afterwards."""
    service = client.services.create(
        S3_IMAGE,
        ["/bin/wget", "-q", "-O", "-", f"{IN_NETWORK_ENDPOINT}/probe.txt"],
        name=f"{S3_CONTAINER}-probe",
        networks=[NETWORK],
        restart_policy=RestartPolicy(condition="none"),
    )
    try:
        deadline = time.monotonic() + timeout_s
        while not (
            done := [
                t["Status"]["State"]
                for t in service.tasks()
                if t["Status"]["State"] in ("complete", "failed", "rejected")
            ]
        ):
            assert time.monotonic() < deadline, service.tasks()
            time.sleep(0.5)
        return done[0], b"".join(service.logs(stdout=True, stderr=True))
    finally:
        service.remove()
        _wait_gone(client, service.id)


def _wait_gone(client: docker.DockerClient, service_id: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while client.containers.list(
        all=True, filters={"label": f"com.docker.swarm.service.id={service_id}"}
    ):
        assert time.monotonic() < deadline, f"service {service_id}'s containers stay"
        time.sleep(0.5)


def network_present(client: docker.DockerClient, timeout_s: float = 10) -> bool:
    """Whether the runs' network exists, once a removal has reached the engine's listing
    (the swarm removes a network a moment after it answers)."""
    deadline = time.monotonic() + timeout_s
    while (present := bool(client.api.networks(names=[NETWORK]))) and (time.monotonic() < deadline):
        time.sleep(0.5)
    return present


def s3_aliases(client: docker.DockerClient) -> list[str] | None:
    """The S3 server's aliases on the runs' network; None when it is not on it."""
    networks = client.containers.get(S3_CONTAINER).attrs["NetworkSettings"]["Networks"]
    return networks[NETWORK]["Aliases"] if NETWORK in networks else None


@docker_test
def test_two_training_runs_side_by_side_then_stopped(swarm, simulator_image, s3_container, project):
    network_existed = bool(swarm.api.networks(names=[NETWORK]))
    a = project.stack("a", runId=97, workers=2, modelPrefix="e2e-a")
    b = project.stack("b", runId=98, modelPrefix="e2e-b")
    try:
        started = project.dr("start-training", "a", "-q")
        assert started.exit_code == 0, started.output
        assert "started trackday-dr-97-trainer" in started.output
        again = project.dr("start-training", "a", "-q", "-w")
        assert again.exit_code == 1 and "run 97 already has training services" in again.output
        assert project.dr("start-training", "b", "-q").exit_code == 0

        # The bucket holds what DRfC's start writes, at DRfC's keys.
        keys = project.objects()
        for key in (
            "custom_files/reward_function.py",
            "custom_files/model_metadata.json",
            "custom_files/hyperparameters.json",
            "e2e-a/reward_function.py",
            "e2e-a/training_params.yaml",
            "e2e-b/training_params.yaml",
        ):
            assert key in keys
        assert project.read("e2e-a/training_params.yaml").decode() == dump_params(
            training_params(a, project.containers_bucket)
        )
        assert (
            project.read("e2e-a/reward_function.py")
            == (project.root / "custom_files" / "reward_function.py").read_bytes()
        )

        # The services are the data, field by field.
        network_id = swarm.api.networks(names=[NETWORK])[0]["Id"]
        secret_names = {s["Spec"]["Name"]: s["ID"] for s in swarm.api.secrets()}
        for settings in (a, b):
            deployed = services_of(swarm, settings.run_id)
            specs = run_services(settings, project.local_site, "training")
            assert sorted(deployed) == sorted(s.name for s in specs)
            for spec in specs:
                service = deployed[spec.name]
                template = spec_of(service)
                container = template["ContainerSpec"]
                assert container["Image"] == spec.image == simulator_image
                assert container["Args"] == list(spec.args)
                assert sorted(container["Env"]) == sorted(f"{k}={v}" for k, v in spec.env.items())
                assert [
                    (m["Source"], m["Target"], m["Type"]) for m in container.get("Mounts", [])
                ] == [(m.source, m.target, m.type) for m in spec.mounts]
                assert [
                    (s["SecretName"], s["File"]["Name"], s["SecretID"])
                    for s in container["Secrets"]
                ] == [(s.secret, s.file, secret_names[s.secret]) for s in spec.secrets]
                assert template["Placement"]["Constraints"] == list(spec.constraints)
                assert template["RestartPolicy"]["Condition"] == "none"
                assert [n["Target"] for n in template["Networks"]] == [network_id]
                assert service["Spec"]["Mode"]["Replicated"]["Replicas"] == spec.replicas
                assert service["Spec"]["Labels"] == dict(spec.labels)
                assert container.get("Init", False) == spec.init
                assert container.get("Dir") == spec.working_dir
        trainer = services_of(swarm, 97)["trackday-dr-97-trainer"]
        workers = services_of(swarm, 97)["trackday-dr-97-simulation"]
        assert spec_of(trainer)["ContainerSpec"]["Mounts"][0]["Target"] == "/var/run/docker.sock"
        node = swarm.info()["Swarm"]["NodeID"]
        for service in (trainer, workers, services_of(swarm, 98)["trackday-dr-98-trainer"]):
            assert {t["NodeID"] for t in wait_running(swarm, service)} == {node}
        assert sorted(t["Slot"] for t in wait_running(swarm, workers)) == [1, 2]

        # What the containers see, through `trackday dr logs`.
        expected_credentials = hashlib.sha256(
            s3_credentials_file(project.server.key, project.server.secret).encode()
        ).hexdigest()
        deadline = time.monotonic() + 30
        while "ready" not in (log := project.dr("logs", "a", "trainer", "--no-follow")).output:
            assert time.monotonic() < deadline, log.output
            time.sleep(0.5)
        assert log.exit_code == 0
        assert "docker socket: yes" in log.output and "sagemaker dir: yes" in log.output
        assert f"credentials: {expected_credentials}" in log.output
        assert project.server.secret not in json.dumps(trainer)  # keys never in the spec
        deadline = time.monotonic() + 30
        while (
            "ready"
            not in (log := project.dr("logs", "a", "worker", "-n", "2", "--no-follow")).output
        ):
            assert time.monotonic() < deadline, log.output
            time.sleep(0.5)
        assert "slot: 2" in log.output and "slot: 1" not in log.output
        assert "args: /opt/ml/code/run.sh multi distributed_training.launch.py" in log.output
        missing = project.dr("logs", "a", "worker", "-n", "3", "--no-follow")
        assert missing.exit_code == 1 and "has no worker 3 (workers are 1..2)" in missing.output

        listed = project.dr("status", "a")
        assert listed.exit_code == 0, listed.output
        for name in (
            "trackday-dr-97-trainer",
            "trackday-dr-97-simulation",
            "trackday-dr-98-trainer",
            "2/2",
        ):
            assert name in listed.output
        for key, body in write_metrics(project.root / "metrics", "e2e-a").items():
            project.server.put(project.bucket, key, body)
        summary = project.dr("summary", "a")
        assert summary.exit_code == 0, summary.output
        rows = {
            line.split("│")[1].strip(): line
            for line in summary.output.splitlines()
            if line.startswith("│")
        }
        assert "e2e-a" in rows["97"] and "3/3" in rows["97"] and "100.0%" in rows["97"]
        assert "e2e-b" in rows["98"] and "2/2" in rows["98"]

        # Stopping run a leaves run b, and its SageMaker container, alone.
        sagemaker_a = fake_sagemaker(swarm, simulator_image, "e2e-a")
        sagemaker_b = fake_sagemaker(swarm, simulator_image, "e2e-b")
        stopped = project.dr("stop-training", "a")
        assert stopped.exit_code == 0, stopped.output
        for name in (
            "trackday-dr-97-trainer",
            "trackday-dr-97-simulation",
            "trackday-dr-97-s3",
            sagemaker_a.name,
        ):
            assert f"removed {name}" in stopped.output
        assert left_behind(swarm, (97,), "none") == []
        assert sorted(services_of(swarm, 98)) == [
            "trackday-dr-98-simulation",
            "trackday-dr-98-trainer",
        ]
        assert swarm.containers.get(sagemaker_b.id).status == "running"
        assert swarm.api.networks(names=[NETWORK])  # run b still uses it
        assert project.dr("stop-training", "b").exit_code == 0
        nothing = project.dr("stop-training", "b")
        assert nothing.exit_code == 0 and "run 98 has no training services" in nothing.output
    finally:
        project.dr("stop-training", "a")
        project.dr("stop-training", "b")
    assert left_behind(swarm, (97, 98), simulator_image) == []
    assert bool(swarm.api.networks(names=[NETWORK])) == network_existed
    assert "e2e-a/model" not in {k.rsplit("/", 1)[0] for k in project.objects()}  # models stay


@docker_test
def test_the_s3_server_is_reachable_as_s3_from_the_runs_network(
    swarm, simulator_image, s3_container, project
):
    """start-training puts the stack's S3 server on sagemaker-local as s3 (once for all
    runs); stop-training takes it off only with the last run, with the network it made."""
    network_existed = bool(swarm.api.networks(names=[NETWORK]))
    project.stack("a", runId=91, modelPrefix="e2e-s3-a")
    project.stack("b", runId=92, modelPrefix="e2e-s3-b")
    try:
        ensure_network(swarm)  # the runs' network as start-training makes it, S3 not on it
        state, _ = probe_s3(swarm)
        assert state == "failed"  # `s3` does not resolve there yet
        started = project.dr("start-training", "a", "-q")
        assert started.exit_code == 0, started.output
        assert "s3" in s3_aliases(swarm)
        assert probe_s3(swarm) == ("complete", PROBE)
        assert project.dr("start-training", "b", "-q").exit_code == 0  # already there
        ports = swarm.containers.get(S3_CONTAINER).attrs["NetworkSettings"]["Ports"]
        assert [p["HostIp"] for p in ports["9000/tcp"]] == ["127.0.0.1"]  # loopback only

        stopped = project.dr("stop-training", "a")
        assert stopped.exit_code == 0 and S3_CONTAINER not in stopped.output
        assert "s3" in s3_aliases(swarm)  # run b still needs it
        assert probe_s3(swarm) == ("complete", PROBE)
        stopped = project.dr("stop-training", "b")
        assert stopped.exit_code == 0, stopped.output
        if not network_existed:  # the network is start-training's: both go
            assert f"removed {S3_CONTAINER} from {NETWORK}" in stopped.output
            assert s3_aliases(swarm) is None
    finally:
        project.dr("stop-training", "a")
        project.dr("stop-training", "b")
    assert left_behind(swarm, (91, 92), simulator_image) == []
    assert network_present(swarm) == network_existed
    assert not swarm.services.list(filters={"name": f"{S3_CONTAINER}-probe"})


@docker_test
def test_a_missing_s3_server_stops_the_start(swarm, simulator_image, project):
    network_existed = bool(swarm.api.networks(names=[NETWORK]))
    project.stack("a", runId=90, modelPrefix="e2e-no-s3")
    outputs = json.loads(project.outputs.read_text())
    project.outputs.write_text(json.dumps({**outputs, "s3Container": "trackday-e2e-none"}))
    result = project.dr("start-training", "a", "-q")
    assert result.exit_code == 1
    assert (
        "the stack's S3 server container trackday-e2e-none does not exist: run "
        "`pulumi up` for the stack"
    ) in " ".join(result.output.split())
    assert left_behind(swarm, (90,), simulator_image) == []
    assert network_present(swarm) == network_existed


@docker_test
def test_an_s3_server_on_the_network_under_another_name_is_named(
    swarm, simulator_image, s3_container, project
):
    network_existed = bool(swarm.api.networks(names=[NETWORK]))
    project.stack("a", runId=89, modelPrefix="e2e-s3-alias")
    ensure_network(swarm)
    swarm.api.connect_container_to_network(S3_CONTAINER, NETWORK)
    try:
        result = project.dr("start-training", "a", "-q")
        assert result.exit_code == 1
        assert (
            f"{S3_CONTAINER} is on {NETWORK} but not as s3: `docker network disconnect "
            f"{NETWORK} {S3_CONTAINER}`, then start again"
        ) in " ".join(result.output.split())
        assert left_behind(swarm, (89,), simulator_image) == []
    finally:
        swarm.api.disconnect_container_from_network(S3_CONTAINER, NETWORK)
        if not network_existed:
            swarm.api.remove_network(NETWORK)
    assert network_present(swarm) == network_existed


@docker_test
def test_an_existing_model_stops_the_start_unless_wiped(
    swarm, simulator_image, s3_container, project
):
    project.stack("a", runId=96, modelPrefix="e2e-old")
    project.server.put(project.bucket, "e2e-old/model/old.index", b"old")
    try:
        refused = project.dr("start-training", "a", "-q")
        assert refused.exit_code == 1
        assert f"s3://{project.bucket}/e2e-old exists (1 objects)" in refused.output
        assert "--wipe" in refused.output and left_behind(swarm, (96,), "none") == []
        wiped = project.dr("start-training", "a", "-q", "--wipe")
        assert wiped.exit_code == 0, wiped.output
        assert "e2e-old/model/old.index" not in project.objects()
        assert "e2e-old/training_params.yaml" in project.objects()
    finally:
        project.dr("stop-training", "a")
    assert left_behind(swarm, (96,), simulator_image) == []


@docker_test
def test_a_wiped_start_that_cannot_start_keeps_the_model(swarm, simulator_image, project):
    """--wipe deletes the previous model only once every placement check has passed."""
    project.stack("a", runId=88, modelPrefix="e2e-keep")
    project.server.put(project.bucket, "e2e-keep/model/old.index", b"old")
    outputs = json.loads(project.outputs.read_text())
    project.outputs.write_text(json.dumps({**outputs, "s3Container": "trackday-e2e-none"}))
    result = project.dr("start-training", "a", "-q", "--wipe")
    assert result.exit_code == 1
    assert "trackday-e2e-none does not exist" in " ".join(result.output.split())
    assert project.objects() == {"e2e-keep/model/old.index"}
    assert left_behind(swarm, (88,), simulator_image) == []


@docker_test
def test_a_bad_reward_function_stops_the_start_before_anything(swarm, simulator_image, project):
    project.stack("a", runId=95, modelPrefix="e2e-bad")
    (project.root / "custom_files" / "reward_function.py").write_text("def reward_function(:\n")
    result = project.dr("start-training", "a", "-q")
    assert result.exit_code == 1
    assert "problem: reward_function.py" in result.output
    assert "fix the custom files before starting" in " ".join(result.output.split())
    assert project.objects() == set() and left_behind(swarm, (95,), simulator_image) == []


@docker_test
def test_services_no_node_can_take_are_refused_before_anything(swarm, project):
    """This node is the trainer; workers meant for simulation nodes have nowhere to go."""
    specs = run_services(DeepRacerSettings(run_id=93), Site(project.containers_bucket), "training")
    with pytest.raises(
        RunError,
        match=r"no ready node is labelled trackday.role=simulation, "
        r"which `node.labels.trackday.role==simulation` needs",
    ):
        check_placement(swarm, specs)
    check_placement(swarm, specs[:1])  # the trainer has its node


@docker_test
def test_evaluation_runs_as_its_own_deployment(swarm, simulator_image, s3_container, project):
    settings = project.stack("e", runId=94, modelPrefix="e2e-eval", evaluation={"saveMp4": True})
    missing = project.dr("start-evaluation", "e", "-q")
    assert missing.exit_code == 1 and "e2e-eval/model does not exist" in missing.output
    project.server.put(project.bucket, "e2e-eval/model/model_metadata.json", b"{}")
    try:
        started = project.dr("start-evaluation", "e", "-q")
        assert started.exit_code == 0, started.output
        params = yaml.safe_load(project.read("e2e-eval/evaluation_params.yaml"))
        stamp = params["SIMTRACE_S3_PREFIX"][0].removeprefix("e2e-eval/evaluation-")
        assert len(stamp) == 14 and stamp.isdigit() and params["JOB_TYPE"] == "EVALUATION"
        assert params["MP4_S3_OBJECT_PREFIX"] == ["e2e-eval/mp4"]
        (spec,) = run_services(settings, project.local_site, "evaluation")
        (service,) = services_of(swarm, 94).values()
        assert service["Spec"]["Name"] == spec.name == "trackday-dr-eval-94-simulation"
        container = spec_of(service)["ContainerSpec"]
        assert sorted(container["Env"]) == sorted(f"{k}={v}" for k, v in spec.env.items())
        assert container["Secrets"][0]["SecretName"] == "trackday-dr-eval-94-s3"
        wait_running(swarm, service)
        assert (
            project.dr("stop-training", "e")
            .output.strip()
            .endswith("run 94 has no training services")
        )
        assert services_of(swarm, 94)
        stopped = project.dr("stop-evaluation", "e")
        assert "removed trackday-dr-eval-94-simulation" in stopped.output
    finally:
        project.dr("stop-evaluation", "e")
    assert left_behind(swarm, (94,), simulator_image) == []


def test_upload_model_copies_one_checkpoint_in_the_import_layout(project, tmp_path):
    """A run's objects as the simulator writes them, then `upload-model` into the bucket."""
    settings = project.stack("m", modelPrefix="e2e-run", upload={"modelPrefix": "e2e-up"})
    source = write_run(tmp_path / "run", "e2e-run")
    files = {
        p.relative_to(source.parent).as_posix(): p.read_bytes()
        for p in source.rglob("*")
        if p.is_file()
    }
    for number, steps in ((5, 6000), (6, 7200)):
        for suffix in ("index", "meta", "data-00000-of-00001"):
            key = f"e2e-run/model/{number}_Step-{steps}.ckpt.{suffix}"
            files[key] = f"{number}{suffix}".encode()
        files[f"e2e-run/model/model_{number}.pb"] = f"graph {number}".encode()
    files |= {
        "e2e-run/model/model_metadata.json": b'{"version": "5"}',
        "e2e-run/reward_function.py": b"def reward_function(params):\n    return 1.0\n",
        "e2e-run/training_params.yaml": b"---\nJOB_TYPE: 'TRAINING'\n",
        "e2e-run/ip/hyperparameters.json": b'{"batch_size": 64}',
    }
    for key, content in files.items():
        project.server.put(project.bucket, key, content)
    assert settings.upload_model_prefix == "e2e-up"

    dry = project.dr("upload-model", "m", "--local", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"would write s3://{project.bucket}/e2e-up/model/6_Step-7200.ckpt.index" in dry.output
    assert not any(k.startswith("e2e-up/") for k in project.objects())

    best = project.dr("upload-model", "m", "--local", "--best")
    assert best.exit_code == 0, best.output
    assert "checkpoint 5_Step-6000.ckpt" in best.output
    uploaded = {k for k in project.objects() if k.startswith("e2e-up/")}
    metrics = {k.replace("e2e-run/", "e2e-up/", 1) for k in files if "/metrics/" in k}
    assert len(metrics) >= 2 and uploaded == metrics | {
        "e2e-up/model/5_Step-6000.ckpt.index",
        "e2e-up/model/5_Step-6000.ckpt.meta",
        "e2e-up/model/5_Step-6000.ckpt.data-00000-of-00001",
        "e2e-up/model/model_5.pb",
        "e2e-up/model/model_metadata.json",
        "e2e-up/model/deepracer_checkpoints.json",
        "e2e-up/model/.coach_checkpoint",
        "e2e-up/model_metadata.json",
        "e2e-up/reward_function.py",
        "e2e-up/training_params.yaml",
        "e2e-up/ip/hyperparameters.json",
    }
    written = {
        "e2e-up/model/deepracer_checkpoints.json",
        "e2e-up/model/.coach_checkpoint",
        "e2e-up/training_params.yaml",
        "e2e-up/model_metadata.json",
    }
    for key in uploaded - written:
        assert project.read(key) == files[key.replace("e2e-up/", "e2e-run/", 1)], key
    assert project.read("e2e-up/model_metadata.json") == b'{"version": "5"}'
    params = yaml.safe_load(project.read("e2e-up/training_params.yaml"))
    assert (params["SAGEMAKER_SHARED_S3_BUCKET"], params["SAGEMAKER_SHARED_S3_PREFIX"]) == (
        project.bucket,
        "e2e-up",
    )
    records = json.loads(project.read("e2e-up/model/deepracer_checkpoints.json"))
    assert records["best_checkpoint"] == records["last_checkpoint"]
    assert records["last_checkpoint"]["name"] == "5_Step-6000.ckpt"
    assert project.read("e2e-up/model/.coach_checkpoint") == b"5_Step-6000.ckpt"

    # Again with the last checkpoint and --wipe: the target holds that checkpoint only.
    last = project.dr("upload-model", "m", "--local", "--wipe")
    assert last.exit_code == 0, last.output
    model = {k for k in project.objects() if k.startswith("e2e-up/model/")}
    assert not any("5_Step" in k or "model_5" in k for k in model)
    assert "e2e-up/model/6_Step-7200.ckpt.index" in model

    absent = project.dr("upload-model", "m", "--local", "-c", "9")
    assert absent.exit_code == 1 and "no checkpoint 9 in e2e-run/model/" in absent.output
    nowhere = project.dr("upload-model", "m")
    assert nowhere.exit_code == 1 and "no upload bucket" in nowhere.output
    itself = project.dr("upload-model", "m", "--local", "--prefix", "e2e-run")
    assert itself.exit_code == 1 and "is the run itself" in " ".join(itself.output.split())


def test_a_stack_without_s3_is_refused(project, tmp_path):
    project.stack("g")
    outputs = tmp_path / "gcp.json"
    outputs.write_text(json.dumps({"target": "gcp", "bucketUrl": "gs://b"}))
    result = runner.invoke(
        app, ["dr", "status", "-s", "g", "--dir", str(project.root), "--outputs", str(outputs)]
    )
    assert result.exit_code == 1
    assert "stack g (gcp) has no S3 bucket (bucketUrl gs://b)" in result.output
