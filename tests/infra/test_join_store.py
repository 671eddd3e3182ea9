"""The swarm formed by the nodes themselves (issue 11 item 2): the gcp program declares the
secret and the narrow IAM and runs nothing over SSH to form it; the rendered bootstrap sections
run (bash, real curl and jq) against strict loopback stand-ins of the metadata server, Secret
Manager and the Docker Engine (tests/infra/store_standins.py)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from infra.bootstrap import join_store, shell_script, trainer_build
from infra.bootstrap.spec import JoinStore
from infra.targets import gcp_ready
from tests.infra import store_standins
from tests.infra.stacks import plain_secret_leaks, run_stack, with_keys

SECRET = "projects/trackday-test/secrets/trackday-swarm-join"
STORE = JoinStore("gcp", SECRET)
TOKEN = "SWMTKN-1-3pu6hszjas19xyp7ghgosyx9k8atbfcr8p2is99znpy26u2lkl-1awxwuwd3z9j1z3puu7rcgdbx"
MANAGER_IP, WORKER_IP = "10.42.1.2", "10.42.1.3"
FAKE_DOCKER = """\
#!/bin/bash
case "$*" in
  "info --format {{.Swarm.LocalNodeState}}") cat "$SWARM_STATE" ;;
  "swarm join-token --quiet worker") printf '%s\\n' "$JOIN_TOKEN" ;;
  *) echo "unexpected: docker $*" >&2; exit 1 ;;
esac
"""


@pytest.fixture
def cloud(tmp_path: Path):
    """The store (manager writes, worker reads), each node's metadata server, the worker's
    Docker Engine, a `docker` CLI and the node env file."""
    store = store_standins.SecretStore(SECRET, writers={"manager-sa"}, readers={"worker-sa"})
    servers = {
        "store": store_standins.secret_manager(store),
        "manager": store_standins.metadata("manager-sa"),
        "worker": store_standins.metadata("worker-sa"),
        "stranger": store_standins.metadata("stranger-sa"),
        "engine": store_standins.docker_engine(str(tmp_path / "docker.sock")),
    }
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    (tmp_path / "state").write_text("inactive\n")
    (tmp_path / "node.env").write_text(f"TRACKDAY_PRIVATE_IP={WORKER_IP}\n")
    yield store, servers, tmp_path
    for server in servers.values():
        server.shutdown()
        server.server_close()


def _script(section: str, servers: dict, tmp_path: Path, node: str) -> str:
    """The section as the node runs it, pointed at the stand-ins instead of Google and Docker."""
    return (
        shell_script("test", join_store.store_auth(STORE) + section)
        .replace(
            join_store.GCP_METADATA,
            f"http://127.0.0.1:{servers[node].server_port}/computeMetadata/v1",
        )
        .replace(
            join_store.GCP_SECRET_MANAGER, f"http://127.0.0.1:{servers['store'].server_port}/v1"
        )
        .replace(join_store.DOCKER_SOCKET, str(tmp_path / "docker.sock"))
        .replace("/run/trackday/node.env", str(tmp_path / "node.env"))
        .replace(f"sleep {join_store.JOIN_POLL_SECONDS}", "sleep 0.1")
    )


def _env(tmp_path: Path, address: str) -> dict[str, str]:
    return {
        "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin",
        "SWARM_STATE": str(tmp_path / "state"),
        "JOIN_TOKEN": TOKEN,
        "TRACKDAY_PRIVATE_IP": address,
    }


def _run(script: str, tmp_path: Path, address: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        ["bash", "-c", script],
        env=_env(tmp_path, address),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _wait_until(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_worker_that_reads_first_waits_for_the_manager_then_joins(cloud) -> None:
    store, servers, tmp_path = cloud
    worker = _run(
        _script(join_store.join_section(STORE), servers, tmp_path, "worker"), tmp_path, WORKER_IP
    )
    _wait_until(lambda: ("GET", 404) in store.log, "the worker's first read")
    assert servers["engine"].joins == []
    manager = _run(
        _script(join_store.publish_section(STORE), servers, tmp_path, "manager"),
        tmp_path,
        MANAGER_IP,
    )
    assert manager.wait(60) == 0, manager.stderr.read()
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert servers["engine"].joins == [
        {
            "JoinToken": TOKEN,
            "RemoteAddrs": [f"{MANAGER_IP}:2377"],
            "AdvertiseAddr": WORKER_IP,
            "ListenAddr": f"{WORKER_IP}:2377",
        }
    ]
    assert TOKEN not in out + err


def test_only_the_manager_writes_and_only_workers_read(cloud) -> None:
    store, servers, tmp_path = cloud
    # A worker's identity cannot write the token (the manager's role is not a worker's).
    writer = _run(
        _script(join_store.publish_section(STORE), servers, tmp_path, "worker"), tmp_path, WORKER_IP
    )
    assert writer.wait(60) != 0 and store.versions == []
    assert ("POST", 403) in store.log
    manager = _run(
        _script(join_store.publish_section(STORE), servers, tmp_path, "manager"),
        tmp_path,
        MANAGER_IP,
    )
    assert manager.wait(60) == 0, manager.stderr.read()
    # An identity that is not the pool's is refused, loudly, instead of waiting.
    stranger = _run(
        _script(join_store.join_section(STORE), servers, tmp_path, "stranger"), tmp_path, WORKER_IP
    )
    _out, err = stranger.communicate(timeout=60)
    assert stranger.returncode != 0
    assert "HTTP 403" in err and "secretmanager.versions.access' denied" in err
    assert servers["engine"].joins == []


def test_a_node_already_in_the_swarm_reads_nothing(cloud) -> None:
    store, servers, tmp_path = cloud
    (tmp_path / "state").write_text("active\n")
    worker = _run(
        _script(join_store.join_section(STORE), servers, tmp_path, "worker"), tmp_path, WORKER_IP
    )
    assert worker.wait(60) == 0 and store.log == [] and servers["engine"].joins == []


def test_the_manager_says_it_is_done_in_its_guest_attributes(cloud) -> None:
    _store, servers, tmp_path = cloud
    done = _run(
        _script(join_store.ready_section(STORE), servers, tmp_path, "manager"), tmp_path, MANAGER_IP
    )
    assert done.wait(60) == 0, done.stderr.read()
    assert servers["manager"].attributes == {join_store.READY_ATTRIBUTE: join_store.READY_VALUE}


def test_a_store_name_that_is_not_a_secret_is_refused() -> None:
    with pytest.raises(ValueError, match=r"is not a Secret Manager name"):
        JoinStore("gcp", "projects/p/secrets/x; rm -rf /")
    with pytest.raises(ValueError, match=r"is not an SSM parameter ARN"):
        JoinStore("aws", SECRET)


POOL = {"gcp": {"nodePool": True}, "network": {"allowedCidrs": ["203.0.113.7/32"]}}


@pytest.fixture(scope="module")
def gcp_pool():
    return run_stack("gcp", with_keys("gcp", **POOL, nodes={"count": 3}))


def test_gcp_deploy_runs_nothing_over_ssh_and_waits_through_the_api(gcp_pool) -> None:
    run = gcp_pool
    assert run.of_type("command:remote:Command") == []
    assert run.of_type("command:remote:CopyToRemote") == []
    waits = {w.inputs["key"]: w for w in run.of_type("pulumi-python:dynamic:Resource")}
    assert sorted(waits) == ["trackday/bootstrap", "trackday/trainer"]
    manager = next(
        vm for vm in run.of_type("gcp:compute/instance:Instance") if vm.name.endswith("-manager")
    )
    for wait in waits.values():
        assert wait.inputs["instance"] == manager.name  # the mock names a VM by its resource
    assert waits["trackday/bootstrap"].inputs["value"] == "done"
    # The trainer: its source archive uploaded under its digest, the manager asked to build
    # that digest (custom metadata), and the deploy waits until it says it has.
    (source,) = run.of_type("gcp:storage/bucketObject:BucketObject")
    digest = waits["trackday/trainer"].inputs["value"]
    assert source.inputs["name"] == f"build/trainer-{digest}.tar.gz"
    assert source.urn in waits["trackday/trainer"].dependencies
    request = json.loads(manager.inputs["metadata"][trainer_build.REQUEST_KEY])
    assert request == {
        "bucket": source.inputs["bucket"],
        "object": source.inputs["name"],
        "digest": digest,
        "tag": "trackday-donkeycar:5.3.0",
        "buildArgs": request["buildArgs"],
    }
    archive = Path(source.inputs["source"]["fileAsset"]).read_bytes()
    assert hashlib.sha256(archive).hexdigest() == digest
    assert run.outputs["swarmImage"].value == "trackday-donkeycar:5.3.0"
    assert plain_secret_leaks(run) == []


def test_gcp_secret_is_written_by_the_manager_and_read_by_the_workers_only(gcp_pool) -> None:
    run = gcp_pool
    (secret,) = run.of_type("gcp:secretmanager/secret:Secret")
    assert secret.inputs["replication"] == {"auto": {}}
    trainer = run.outputs["trainerServiceAccount"].value
    vms = {vm.name.rsplit("-", 1)[-1]: vm for vm in run.of_type("gcp:compute/instance:Instance")}
    worker_accounts = {
        vm.inputs["serviceAccount"]["email"] for n, vm in vms.items() if n != "manager"
    }
    assert vms["manager"].inputs["serviceAccount"]["email"] == trainer
    assert len(worker_accounts) == 1 and trainer not in worker_accounts
    grants = {
        (m.inputs["role"], m.inputs["member"])
        for m in run.of_type("gcp:secretmanager/secretIamMember:SecretIamMember")
    }
    assert grants == {
        ("roles/secretmanager.secretVersionAdder", f"serviceAccount:{trainer}"),
        ("roles/secretmanager.secretAccessor", f"serviceAccount:{worker_accounts.pop()}"),
    }
    name = f"projects/{secret.inputs['project']}/secrets/{secret.inputs['secretId']}"
    for role, vm in vms.items():
        user_data = vm.inputs["metadata"]["user-data"]
        assert name in user_data, role
        assert (":addVersion" in user_data) == (role == "manager")
        assert ("versions/latest:access" in user_data) == (role != "manager")
        assert (join_store.LABEL_SCRIPT in user_data) == (role == "manager")


def test_a_lone_manager_has_no_reader() -> None:
    run = run_stack("gcp", with_keys("gcp", **POOL, nodes={"count": 1}))
    (grant,) = run.of_type("gcp:secretmanager/secretIamMember:SecretIamMember")
    assert grant.inputs["role"] == "roles/secretmanager.secretVersionAdder"
    accounts = [a.name for a in run.of_type("gcp:serviceaccount/account:Account")]
    assert [a for a in accounts if "worker" in a] == []


class _Answer:
    def __init__(self, status: int, body: dict | None = None):
        self.status_code, self._body, self.text = status, body or {}, str(body)

    def json(self) -> dict:
        return self._body


def test_the_deploy_waits_for_the_managers_done_and_gives_up_clearly() -> None:
    props = {
        "api": "https://compute.example",
        "project": "p",
        "zone": "us-central1-a",
        "instance": "m",
        "key": "trackday/bootstrap",
        "value": "done",
        "minutes": 1,
    }
    answers = [_Answer(404), _Answer(200, {"variableValue": "done"})]
    urls: list[str] = []
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def get(url: str) -> _Answer:
        urls.append(url)
        return answers.pop(0)

    gcp_ready.wait_for_attribute(get, props, clock=lambda: now[0], sleep=sleep)
    assert urls == [gcp_ready.attribute_url(props)] * 2
    assert urls[0].endswith("/instances/m/getGuestAttributes?variableKey=trackday/bootstrap")
    with pytest.raises(TimeoutError, match=r"m did not report trackday/bootstrap=done within 1"):
        gcp_ready.wait_for_attribute(lambda url: _Answer(404), props, lambda: now[0], sleep)
    with pytest.raises(RuntimeError, match=r"HTTP 403.*compute.instances.getGuestAttributes"):
        gcp_ready.wait_for_attribute(lambda url: _Answer(403), props, lambda: now[0], sleep)


BUILD_DOCKER = """\
#!/bin/bash
[ "$1" = build ] || { echo "unexpected: docker $*" >&2; exit 1; }
shift
printf '%s\\n' "$@" > "$BUILD_LOG"
while [ $# -gt 0 ]; do
  [ "$1" = --file ] && { [ -f "$2" ] || { echo "no Dockerfile $2" >&2; exit 1; }; }
  shift
done
"""


def test_the_manager_builds_the_requested_archive_once(tmp_path: Path) -> None:
    data = trainer_build.source_archive(Path(__file__).resolve().parents[2])
    build = trainer_build.TrainerBuild(
        digest=trainer_build.digest(data),
        tag="trackday-donkeycar:5.3.0",
        build_args=(("BASE", "tensorflow/tensorflow:2.15.0-gpu"), ("DONKEYCAR", "5.3.0")),
    )
    assert trainer_build.source_archive(Path(__file__).resolve().parents[2]) == data
    gcs = store_standins.storage({("bucket-1", build.object_name): data}, {"manager-sa"})
    node = store_standins.metadata("manager-sa")
    node.custom[trainer_build.REQUEST_KEY] = build.request("bucket-1")
    for folder in ("bin", "run", "lib"):
        (tmp_path / folder).mkdir()
    (tmp_path / "bin" / "docker").write_text(BUILD_DOCKER)
    (tmp_path / "bin" / "docker").chmod(0o755)
    (tmp_path / "lib" / "bootstrap.done").touch()
    script = (
        trainer_build.build_script()
        .replace(join_store.GCP_METADATA, f"http://127.0.0.1:{node.server_port}/computeMetadata/v1")
        .replace(trainer_build.GCS_API, f"http://127.0.0.1:{gcs.server_port}/storage/v1")
        .replace("/run/trackday", str(tmp_path / "run"))
        .replace("/var/lib/trackday", str(tmp_path / "lib"))
    )
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "BUILD_LOG": str(tmp_path / "build")}
    try:
        first = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
        assert first.returncode == 0, first.stderr
        args = (tmp_path / "build").read_text().splitlines()
        assert args[args.index("--tag") + 1] == "trackday-donkeycar:5.3.0"
        assert "--build-arg=BASE=tensorflow/tensorflow:2.15.0-gpu" in args
        assert node.attributes == {trainer_build.BUILT_ATTRIBUTE: build.digest}
        assert not (tmp_path / "run" / "building").exists()
        # The same request again builds nothing; another identity cannot read the archive.
        (tmp_path / "build").unlink()
        again = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
        assert again.returncode == 0 and not (tmp_path / "build").exists()
        (tmp_path / "lib" / "trainer.built").unlink()
        gcs.readers.clear()
        refused = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
        assert refused.returncode != 0 and "403" in refused.stderr
    finally:
        for server in (gcs, node):
            server.shutdown()
            server.server_close()


LABEL_DOCKER = """\
#!/bin/bash
case "$1 $2" in
  "info --format") echo active ;;
  "node ls") printf '%s\\n' labelledworkerid0000000001 newworkerid00000000000002 ;;
  "node inspect")
    [ "$5" = labelledworkerid0000000001 ] && echo '{"trackday.role":"simulation"}' || echo null ;;
  "node update") printf '%s\\n' "$*" >> "$UPDATES" ;;
  *) echo "unexpected: docker $*" >&2; exit 1 ;;
esac
"""


def test_the_manager_labels_each_joined_worker_once(tmp_path: Path) -> None:
    (tmp_path / "docker").write_text(LABEL_DOCKER)
    (tmp_path / "docker").chmod(0o755)
    script = join_store.label_workers_script({"zone": "us-central1-a"})
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "UPDATES": str(tmp_path / "updates")}
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "updates").read_text().splitlines() == [
        "node update --label-add trackday.role=simulation --label-add zone=us-central1-a"
        " newworkerid00000000000002"
    ]


def test_the_manager_is_busy_while_it_builds_the_trainer(tmp_path: Path) -> None:
    from infra.bootstrap import IDLE_SCRIPT, READY_FILE, NodeBootstrap, user_data
    from infra.bootstrap.spec import BUILDING_FILE, IDLE_SINCE_FILE, POWEROFF_SCRIPT

    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq7wrFzfOn0XQ3qgKj1TAm1ZcA0IQH2HKxq4V1f1l3M td"
    node = NodeBootstrap("manager", "gcp", "trackday", key, idle_minutes=5, join_store=STORE)
    files = {f["path"]: f["content"] for f in yaml.safe_load(user_data(node))["write_files"]}
    assert trainer_build.BUILD_SCRIPT in files and join_store.LABEL_SCRIPT in files
    for name, body in {
        "docker": "exit 0",
        "nvidia-smi": "echo 0",
        "ss": "exit 0",
        "logger": "exit 0",
        "poweroff": f"touch {tmp_path / 'off'}",
    }.items():
        (tmp_path / name).write_text(f"#!/bin/bash\n{body}\n")
        (tmp_path / name).chmod(0o755)
    (tmp_path / "ready").touch()
    for building in (True, False):
        (tmp_path / "since").write_text(f"{int(time.time()) - 3600}\n")
        if building:
            (tmp_path / "building").touch()
        else:
            (tmp_path / "building").unlink()
        script = (
            files[IDLE_SCRIPT]
            .replace(READY_FILE, str(tmp_path / "ready"))
            .replace(IDLE_SINCE_FILE, str(tmp_path / "since"))
            .replace(BUILDING_FILE, str(tmp_path / "building"))
            .replace(POWEROFF_SCRIPT, str(tmp_path / "poweroff"))
        )
        env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
        result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "off").exists() is not building
