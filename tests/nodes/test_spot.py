"""Spot nodes see their cloud's interruption notice and stop their runs (infra/bootstrap/spot.py).

Three nodes boot on a network of their own with the user data the program renders for spot
nodes: the shipped AWS stack's manager (`nodes.spot: true`), a Google Cloud worker and an
Azure worker (the bootstrap the pool declares for them, `spot=True`). Each reaches the metadata
stand-in (metadata_standin.py, strict, written from the clouds' documentation) at
169.254.169.254 or metadata.google.internal, as on its cloud. The Google Cloud node's package
archive is empty: Docker is never installed, so its notice, raised before it boots, comes
during the bootstrap. Nothing here waits on time: every step waits for a condition.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import docker as docker_sdk
import pytest

from infra.bootstrap import NodeBootstrap, user_data
from infra.bootstrap.spot import INTERRUPTION_RECORD, NOTICES_FILE, RESUME_LABEL
from infra.workloads.run_target import ManagerAccess, RunTarget
from tests.e2e.images import import_busybox
from tests.nodes import aws_api, harness, standins
from tests.nodes.harness import Cluster, Node, wait_for
from tests.nodes.render import Rendered, SshKey, render
from trackday import dr_runs, manager_ssh
from training.deepracer.layout import RESUMED_FROM
from training.deepracer.params import Bucket, dump_params, training_params
from training.deepracer.settings import DeepRacerSettings

pytestmark = [pytest.mark.docker, pytest.mark.nodes]

SUBNET = "10.42.20.0/24"
ADDRESSES = {"manager": "10.42.20.10", "gcp-worker": "10.42.20.11", "azure-worker": "10.42.20.12"}
S3_ADDRESS = "10.42.20.5"
AWS_API_ADDRESS = "10.42.20.6"
BUCKET = "spot-bucket"
NOTICE_TIMEOUT_S = 300
SIMULATOR_TAG = "6.0.4-cpu"
# The trainer stand-in: the simulator's name and tag; `cat` is what the handler runs in it.
SIMULATOR_ENTRY = b"exec sleep 3600\n"
CHECKPOINT = "3_Step-1200.ckpt"
RUNS = {1: "spot-run-keys", 2: "spot-run-role"}  # run id: model prefix
AZURE_CLIENT_ID = "0f9c2a5e-3b1d-4c7e-9a8f-2d6b1e4c7a90"
REWARD = "def reward_function(params):\n    return 1.0\n"


@dataclass
class SpotNodes:
    cluster: Cluster
    metadata: standins.Metadata
    s3: standins.S3Server
    stack: Rendered
    aws: aws_api.AwsApi

    def node(self, key: str) -> Node:
        return self.cluster.nodes[key]


def _checkpoints() -> str:
    """deepracer_checkpoints.json as the simulator's trainer writes it."""
    record = {"name": CHECKPOINT, "time_stamp": 1764500000.0, "avg_eval_metric": 0.42}
    return json.dumps({"best_checkpoint": record, "last_checkpoint": record})


@pytest.fixture(scope="module")
def spot(
    node_image: str, ssh_key: SshKey, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SpotNodes]:
    folder = tmp_path_factory.mktemp("spot")
    for run_id, prefix in RUNS.items():
        model = folder / "buckets" / BUCKET / prefix / "model"
        model.mkdir(parents=True)
        (model / "deepracer_checkpoints.json").write_text(_checkpoints())
        # What `dr start-training` wrote: the handler prepares the resume from them.
        bucket = Bucket(BUCKET, "us-east-1", f"http://{S3_ADDRESS}:9000")
        params = dump_params(training_params(_settings(run_id), bucket))
        (model.parent / "training_params.yaml").write_text(params)
        (model.parent / "reward_function.py").write_text(REWARD)
    empty = folder / "Packages"
    empty.write_text("")
    cluster = harness.new_cluster(node_image, SUBNET, ssh_key)
    metadata = standins.start_metadata(node_image)
    s3 = standins.start_s3(cluster, node_image, S3_ADDRESS, folder / "buckets")
    try:
        metadata.write("gcp-preempted", "TRUE")
        metadata.write("azure-vm-name", "azure-worker")
        role = {"Code": "Success", "AccessKeyId": standins.S3_KEYS[0],
                "SecretAccessKey": standins.S3_KEYS[1], "Token": "session-token"}  # fmt: skip
        metadata.write("aws-role.json", json.dumps(role))
        stack = render("aws", ssh_key, nodes={"count": 1})
        documents = {
            "manager": stack.node("manager").user_data,
            "gcp-worker": user_data(
                NodeBootstrap("worker", "gcp", "trackday", ssh_key.public_key, spot=True)
            ),
            "azure-worker": user_data(
                NodeBootstrap(
                    "worker",
                    "azure",
                    "trackday",
                    ssh_key.public_key,
                    azure_identity_client_id=AZURE_CLIENT_ID,
                    spot=True,
                )
            ),
        }
        # The aws manager forms its swarm through Parameter Store, with the role the metadata
        # stand-in gives it (its IMDS is that stand-in's, at 169.254.169.254).
        keys = (*standins.S3_KEYS, role["Token"])
        api = aws_api.start(
            cluster, AWS_API_ADDRESS, [aws_api.node_role("spot", "manager", None, keys)], False
        )
        for key, document in documents.items():
            files = {"/opt/trackday-archive/Packages": empty} if key == "gcp-worker" else None
            node = cluster.boot(key, document, ADDRESSES[key], files=files or api.node_files)
            metadata.connect(node)
        yield SpotNodes(cluster, metadata, s3, stack, api)
    finally:
        if not harness.keep_nodes():
            cluster.down()
            metadata.down()
            s3.down()


def notices(node: Node) -> list[str]:
    return node.root(f"cat {NOTICES_FILE} 2>/dev/null || true").splitlines()


def trackday_journal(node: Node) -> str:
    """trackday's log lines and the watcher's own output (journalctl ANDs -t with -u)."""
    return node.root(
        "journalctl --no-pager -t trackday; journalctl --no-pager -u trackday-spot-watch",
        check=False,
    )


def assert_handled_cleanly(node: Node) -> None:
    journal = trackday_journal(node)
    assert "handler failed" not in journal and "could not acknowledge" not in journal, journal
    watching = node.root("systemctl is-active trackday-spot-watch.service", check=False)
    assert watching.strip() == "active", node.log()


def test_a_notice_during_the_bootstrap_is_handled_without_error(spot: SpotNodes) -> None:
    """Google Cloud: `preempted` is TRUE before the node boots; Docker never gets installed."""
    node = spot.node("gcp-worker")
    wait_for("the GCP notice handled", lambda: bool(notices(node)), NOTICE_TIMEOUT_S, node.log)
    assert notices(node)[0].endswith(" preempted")
    assert not node.has("/usr/bin/docker")
    wait_for(
        "the handler's report",
        lambda: "Docker is not running yet" in trackday_journal(node),
        NOTICE_TIMEOUT_S,
        node.log,
    )
    assert_handled_cleanly(node)
    asked = [r for r in spot.metadata.requests() if r["path"].startswith("/computeMetadata/")]
    assert asked and all(r["host"] == standins.GCP_METADATA_HOST for r in asked)
    assert all(r["headers"]["metadata-flavor"] == "Google" for r in asked)
    # It waits for a change of the value it last saw (its ETag), rather than polling.
    wait_for(
        "a wait on the value's ETag",
        lambda: any(
            "wait_for_change=true" in line and "last_etag=" in line and "last_etag=NONE" not in line
            for line in spot.metadata.arrived()
        ),
        120,
        node.log,
    )


def _event(event_id: str, kind: str, vm: str) -> dict:
    return {
        "EventId": event_id,
        "EventStatus": "Scheduled",
        "EventType": kind,
        "ResourceType": "VirtualMachine",
        "Resources": [vm],
        "NotBefore": "Mon, 30 Nov 2026 20:30:00 GMT",
        "Description": "",
        "EventSource": "Platform",
        "DurationInSeconds": -1,
    }


def _acknowledged(spot: SpotNodes, event_id: str) -> bool:
    return any(
        r["method"] == "POST" and r["status"] == 200 and event_id in r["body"]
        for r in spot.metadata.requests()
    )


def test_azure_preempt_events_are_handled_and_acknowledged_twice_in_a_row(
    spot: SpotNodes,
) -> None:
    """Only a Preempt naming this VM counts; each is handled once, then acknowledged."""
    node = spot.node("azure-worker")
    node.wait_bootstrapped()  # Docker runs: the handler looks for runs, finds none
    others = [_event("reboot-1", "Reboot", "azure-worker"), _event("other-1", "Preempt", "vm-2")]
    first = _event("preempt-1", "Preempt", "azure-worker")
    spot.metadata.write("azure-events.json", json.dumps([*others, first]))
    wait_for("preempt-1 acknowledged", lambda: _acknowledged(spot, "preempt-1"), 300, node.log)
    second = _event("preempt-2", "Preempt", "azure-worker")
    spot.metadata.write("azure-events.json", json.dumps([*others, second]))
    wait_for("preempt-2 acknowledged", lambda: _acknowledged(spot, "preempt-2"), 300, node.log)
    assert [line.split()[-1] for line in notices(node)] == ["preempt-1", "preempt-2"]
    assert not _acknowledged(spot, "reboot-1") and not _acknowledged(spot, "other-1")
    assert_handled_cleanly(node)
    asked = [r for r in spot.metadata.requests() if r["path"].startswith("/metadata/")]
    assert [r for r in asked if r["headers"].get("metadata") != "true"] == []


@pytest.fixture(scope="module")
def manager_engine(spot: SpotNodes, ssh_key: SshKey) -> Iterator[docker_sdk.DockerClient]:
    manager = spot.node("manager")
    manager.wait_bootstrapped()
    # The host key the manager published with its "done", as `pulumi up` reads it.
    ready = json.loads(spot.aws.parameters()["/trackday/aws/trackday-ready"]["Value"])
    client = manager_ssh.connect(
        manager.address, "trackday", ssh_key.private_key.read_text(), host_key=ready["hostKey"]
    )
    yield client
    client.close()


def _settings(run_id: int) -> DeepRacerSettings:
    return DeepRacerSettings(
        run_id=run_id, model_prefix=RUNS[run_id], simulator={"tag": SIMULATOR_TAG}, opengl=False
    )


def _start_run(client, spot: SpotNodes, ssh_key: SshKey, run_id: int, keys: bool) -> None:
    """A DeepRacer training run as `trackday dr start-training` deploys it (the services
    only: the bucket's files are the test's)."""
    settings = _settings(run_id)
    target = RunTarget(
        ManagerAccess(spot.node("manager").address, "trackday", ssh_key.private_key.read_text()),
        Bucket(BUCKET, "us-east-1", spot.s3.endpoint),
        f"s3://{BUCKET}",
        {},
        standins.S3_KEYS if keys else None,  # without: the node's role (AWS metadata)
        single_node=True,
        cloud="aws",
    )
    dr_runs.deploy(client, settings, target, "training")


def test_an_aws_notice_interrupts_the_runs_on_the_manager(
    spot: SpotNodes, manager_engine: docker_sdk.DockerClient, ssh_key: SshKey
) -> None:
    manager = spot.node("manager")
    reference = DeepRacerSettings(simulator={"tag": SIMULATOR_TAG}).simulator.reference
    import_busybox(
        docker_sdk.from_env(), reference, ("sh", "sleep", "cat"),
        {"entry.sh": SIMULATOR_ENTRY}, '["/bin/sh", "/entry.sh"]',
    )  # fmt: skip
    manager.load_image(reference)
    for run_id in RUNS:
        _start_run(manager_engine, spot, ssh_key, run_id, keys=run_id == 1)
    donkey = manager.root(
        f"docker run -d --init --label trackday.workload=donkeycar-train {reference} sleep 600"
    ).strip()

    def trainers_running() -> bool:
        running = manager.root("docker ps -q --filter label=trackday.role=trainer")
        return len(running.split()) == len(RUNS)

    wait_for("both trainers running", trainers_running, 300, manager.log)
    spot.metadata.write("aws-action.json", '{"action": "stop", "time": "2026-11-30T20:30:00Z"}')

    bucket = spot.s3.folder / BUCKET
    records = {run: bucket / prefix / INTERRUPTION_RECORD for run, prefix in RUNS.items()}
    wait_for(
        "both interruption records",
        lambda: all(p.exists() for p in records.values()),
        NOTICE_TIMEOUT_S,
        manager.log,
    )
    for run_id, path in records.items():
        record = json.loads(path.read_text())
        assert record["run_id"] == run_id and record["model_prefix"] == RUNS[run_id]
        assert record["checkpoint"] == CHECKPOINT and record["iteration"] == 3
        assert record["node"] == "manager" and '"action": "stop"' in record["notice"]
        # The resume is prepared under the next prefix, as `dr resume` would write it.
        old, new = RUNS[run_id], f"{RUNS[run_id]}-1"
        assert record["prepared"] == new
        params = (bucket / new / "training_params.yaml").read_text()
        assert f"'{new}'" in params and f"'{new}/metrics/" in params
        assert f"'{old}'" not in params and f"'{old}/" not in params
        assert (bucket / new / "reward_function.py").read_text() == REWARD.rstrip("\n")
        assert json.loads((bucket / new / RESUMED_FROM).read_text())["model_prefix"] == old

    def scaled_to_zero() -> bool:
        replicas = manager.root(
            "docker service ls --filter label=trackday.workload=deepracer --format '{{.Replicas}}'"
        ).split()
        return len(replicas) == 2 * len(RUNS) and all(r.startswith("0/0") for r in replicas)

    wait_for("the runs' services at zero replicas", scaled_to_zero, 120, manager.log)
    trainer = json.loads(manager.root("docker service inspect trackday-dr-1-trainer"))[0]["Spec"]
    env = dict(item.split("=", 1) for item in trainer["TaskTemplate"]["ContainerSpec"]["Env"])
    assert env["MODEL_S3_PREFIX"] == f"{RUNS[1]}-1" and env["PRETRAINED_S3_PREFIX"] == RUNS[1]
    assert env["PRETRAINED"] == "True" and env["PRETRAINED_CHECKPOINT"] == "last"
    assert trainer["Labels"][RESUME_LABEL] == "1"
    state = manager.root(f"docker inspect -f '{{{{.State.Running}}}}' {donkey}").strip()
    assert state == "false"
    # The notice stays up until the instance stops: it is handled once.
    polls = len([r for r in spot.metadata.requests() if r["path"].endswith("instance-action")])
    wait_for(
        "two more polls of the standing notice",
        lambda: (
            len([r for r in spot.metadata.requests() if r["path"].endswith("instance-action")])
            >= polls + 2
        ),
        120,
        manager.log,
    )
    assert len(notices(manager)) == 1
    # A second notice: handled, and the first one's records and prepared resumes stand.
    written = {run: path.read_text() for run, path in records.items()}
    spot.metadata.write("aws-action.json", '{"action": "stop", "time": "2026-11-30T20:31:00Z"}')
    wait_for("the second notice handled", lambda: len(notices(manager)) == 2, 120, manager.log)
    wait_for(
        "the runs found stopped already",
        lambda: (
            manager.root("journalctl --no-pager -t trackday").count("is stopped already")
            == len(RUNS)
        ),
        120,
        manager.log,
    )
    assert {run: path.read_text() for run, path in records.items()} == written
    assert_handled_cleanly(manager)
    # Every request obeyed IMDSv2: a token first, then only requests carrying it.
    aws = [r for r in spot.metadata.requests() if r["path"].startswith("/latest/")]
    assert aws[0]["method"] == "PUT" and aws[0]["path"] == "/latest/api/token"
    tokens = [r for r in aws if r["path"] == "/latest/api/token"]
    assert len(tokens) < len(aws) / 4, "a new IMDSv2 token for every poll: the token is lost"
    assert all(r["status"] in (200, 404) for r in aws), [r for r in aws if r["status"] >= 400]


def test_the_manager_resumes_the_prepared_runs_at_its_next_boot(spot: SpotNodes) -> None:
    """The capacity comes back: the node boots again (its disks kept), the notice is gone,
    and the runs train on under their prepared prefixes, pretrained from where they stopped."""
    manager = spot.node("manager")
    spot.metadata.write("aws-action.json", "")  # EC2 started the instance again: no notice
    harness.docker("restart", "--time", "60", manager.container, timeout=180)

    def trainers_back() -> bool:
        listed = manager.root(
            "docker service ls --filter label=trackday.workload=deepracer"
            " --format '{{.Name}} {{.Replicas}}' 2>/dev/null || true"
        ).split("\n")
        return len([line for line in listed if line.endswith(" 1/1")]) == 2 * len(RUNS)

    wait_for("the runs running again after the boot", trainers_back, 300, manager.log)
    for run_id, prefix in RUNS.items():
        trainer = json.loads(manager.root(f"docker service inspect trackday-dr-{run_id}-trainer"))
        spec = trainer[0]["Spec"]
        env = dict(item.split("=", 1) for item in spec["TaskTemplate"]["ContainerSpec"]["Env"])
        assert env["MODEL_S3_PREFIX"] == f"{prefix}-1" and env["PRETRAINED_S3_PREFIX"] == prefix
        assert RESUME_LABEL not in spec["Labels"]
    assert len(notices(manager)) == 2  # the boot handled no notice again
    assert "resuming" in trackday_journal(manager)


def test_no_node_broke_a_stand_in_rule(spot: SpotNodes) -> None:
    """No request of any node was refused (missing header, wrong method, no token)."""
    refused = [r for r in spot.metadata.requests() if r["status"] in (400, 401, 403, 405)]
    assert refused == []
