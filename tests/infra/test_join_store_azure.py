"""Azure's nodes form the swarm through the stack's Key Vault (issue 11 item 2): the rendered
bootstrap sections run (bash, real curl and jq) against strict loopback stand-ins of IMDS,
Key Vault with RBAC and the Docker Engine (tests/infra/azure_standins.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from infra.bootstrap import join_store, shell_script, trainer_build
from infra.bootstrap.spec import AZURE_READY_SECRET, JoinStore
from infra.targets import azure_vault
from tests.infra import azure_standins, store_standins
from tests.infra.stacks import plain_secret_leaks, run_stack, with_keys
from tests.infra.test_join_store import FAKE_DOCKER, MANAGER_IP, TOKEN, WORKER_IP, _wait_until

VM = "azure-native:compute:VirtualMachine"
VAULT = "https://trackday-dev-0a1b2c.vault.azure.net"
STORE = JoinStore("azure", f"{VAULT}/secrets/swarm-join")
MANAGER, WORKER, STRANGER = (
    "11111111-1111-1111-1111-111111111111",
    "22222222-2222-2222-2222-222222222222",
    "33333333-3333-3333-3333-333333333333",
)
VM_ID = "8f2c1b7e-5d4a-4e3f-9b1a-0c6d2e7f8a91"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq7wrFzfOn0XQ3qgKj1TAm1ZcA0IQH2HKxq4V1f1l3M"


@pytest.fixture
def cloud(tmp_path: Path):
    """The vault (the manager an Officer, the worker a User of the join secret only), one
    IMDS per node, the worker's Docker Engine, a `docker` CLI and the node env file."""
    vault = azure_standins.Vault(officers={MANAGER}, users={"swarm-join": {WORKER}})
    servers = {
        "vault": azure_standins.key_vault(vault),
        "imds": azure_standins.imds({MANAGER, WORKER, STRANGER}, VM_ID),
        "engine": store_standins.docker_engine(str(tmp_path / "docker.sock")),
    }
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "docker").write_text(FAKE_DOCKER)
    (tmp_path / "bin" / "docker").chmod(0o755)
    (tmp_path / "state").write_text("inactive\n")
    (tmp_path / "node.env").write_text(f"TRACKDAY_PRIVATE_IP={WORKER_IP}\n")
    (tmp_path / "host_key.pub").write_text(f"{HOST_KEY} root@manager\n")
    yield vault, servers, tmp_path
    for server in servers.values():
        server.shutdown()
        server.server_close()


def _run(
    section: str, servers: dict, tmp_path: Path, address: str, identity: str
) -> subprocess.Popen:
    """The section as `identity`'s node runs it, pointed at the stand-ins instead of Azure
    and Docker."""
    script = (
        shell_script("test", join_store.store_auth(STORE, identity) + section)
        .replace(join_store.AZURE_IMDS, f"http://127.0.0.1:{servers['imds'].server_port}/metadata")
        .replace(VAULT, f"http://127.0.0.1:{servers['vault'].server_port}")
        .replace(join_store.DOCKER_SOCKET, str(tmp_path / "docker.sock"))
        .replace(join_store.HOST_KEY_FILE, str(tmp_path / "host_key.pub"))
        .replace("/run/trackday/node.env", str(tmp_path / "node.env"))
        .replace(f"sleep {join_store.JOIN_POLL_SECONDS}", "sleep 0.1")
    )
    env = {
        "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin",
        "SWARM_STATE": str(tmp_path / "state"),
        "JOIN_TOKEN": TOKEN,
        "TRACKDAY_PRIVATE_IP": address,
    }
    return subprocess.Popen(
        ["bash", "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_a_worker_that_reads_first_waits_for_the_manager_then_joins(cloud) -> None:
    vault, servers, tmp_path = cloud
    worker = _run(join_store.join_section(STORE), servers, tmp_path, WORKER_IP, WORKER)
    _wait_until(lambda: ("GET", "swarm-join", 404, WORKER) in vault.log, "the worker's first read")
    # The deployer creates the secret with a placeholder (workers' role is on the secret):
    # no token in it yet, so the worker keeps waiting.
    vault.secrets["swarm-join"] = "pending"
    _wait_until(
        lambda: ("GET", "swarm-join", 200, WORKER) in vault.log, "a read of the placeholder"
    )
    assert servers["engine"].joins == [] and worker.poll() is None
    manager = _run(join_store.publish_section(STORE), servers, tmp_path, MANAGER_IP, MANAGER)
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


def test_a_worker_identity_cannot_write_and_a_stranger_cannot_read(cloud) -> None:
    vault, servers, tmp_path = cloud
    writer = _run(join_store.publish_section(STORE), servers, tmp_path, WORKER_IP, WORKER)
    assert writer.wait(60) != 0 and vault.secrets == {}
    assert ("PUT", "swarm-join", 403, WORKER) in vault.log
    manager = _run(join_store.publish_section(STORE), servers, tmp_path, MANAGER_IP, MANAGER)
    assert manager.wait(60) == 0, manager.stderr.read()
    stranger = _run(join_store.join_section(STORE), servers, tmp_path, WORKER_IP, STRANGER)
    _out, err = stranger.communicate(timeout=60)
    assert stranger.returncode != 0 and "HTTP 403" in err and "secrets/get" in err
    assert servers["engine"].joins == []


def test_the_manager_publishes_done_and_its_host_key(cloud) -> None:
    vault, servers, tmp_path = cloud
    done = _run(join_store.ready_section(STORE), servers, tmp_path, MANAGER_IP, MANAGER)
    assert done.wait(60) == 0, done.stderr.read()
    assert json.loads(vault.secrets[AZURE_READY_SECRET]) == {
        "bootstrap": "done",
        "hostKey": HOST_KEY,
        "vmId": VM_ID,
    }


def test_an_azure_store_needs_a_vault_secret_url_and_an_identity() -> None:
    with pytest.raises(ValueError, match=r"is not a Key Vault secret URL"):
        JoinStore("azure", "https://example.com/secrets/x")
    with pytest.raises(ValueError, match=r"client id"):
        join_store.store_auth(STORE)


@pytest.fixture(scope="module")
def azure_pool():
    network = {"allowedCidrs": ["203.0.113.7/32"]}
    return run_stack("azure", with_keys("azure", network=network, nodes={"count": 3}))


def test_azure_declares_the_vault_and_exactly_the_writer_and_reader_grants(azure_pool) -> None:
    run = azure_pool
    (vault,) = run.of_type("azure-native:keyvault:Vault")
    assert vault.inputs["properties"]["enableRbacAuthorization"] is True
    assert "accessPolicies" not in vault.inputs["properties"]
    secrets = {s.inputs["secretName"]: s for s in run.of_type("azure-native:keyvault:Secret")}
    assert set(secrets) == {azure_vault.JOIN_SECRET, azure_vault.GATEWAY_KEYS_SECRET}
    assert secrets[azure_vault.JOIN_SECRET].inputs["properties"] == {"value": "pending"}
    identities = {
        i.name.removeprefix("trackday-azure-nodes-").removesuffix("-identity"): i
        for i in run.of_type("azure-native:managedidentity:UserAssignedIdentity")
    }
    principal = {name: _principal(i) for name, i in identities.items()}
    vault_id, join_id = f"{vault.name}-id", f"{secrets['swarm-join'].name}-id"
    grants = {
        (g.inputs["principalId"], g.inputs["roleDefinitionId"].rsplit("/", 1)[1], g.inputs["scope"])
        for g in run.of_type("azure-native:authorization:RoleAssignment")
        if g.inputs["scope"] in (vault_id, join_id)
    }
    deployer = next(
        g.inputs["principalId"]
        for g in run.of_type("azure-native:authorization:RoleAssignment")
        if g.name.endswith("vault-deployer")
    )
    assert grants == {
        (principal["manager"], azure_vault.SECRETS_OFFICER, vault_id),
        (principal["worker-1"], azure_vault.SECRETS_USER, join_id),
        (principal["worker-2"], azure_vault.SECRETS_USER, join_id),
        (deployer, azure_vault.SECRETS_USER, vault_id),
    }


def test_azure_forms_the_swarm_without_ssh_and_keeps_secrets_out_of_user_data(azure_pool):
    run = azure_pool
    names = [c.name for c in run.of_type("command:remote:Command")]
    assert [n for n in names if "-join" in n or "-labels" in n or "host-key" in n] == []
    assert [n for n in names if "gateway" in n] == []
    vms = {vm.name.rsplit("-", 1)[-1]: vm for vm in run.of_type(VM)}
    vault = run.one("azure-native:keyvault:Vault").inputs["vaultName"]
    for role, vm in vms.items():
        user_data = base64.b64decode(vm.inputs["osProfile"]["customData"]).decode()
        assert f"https://{vault}.vault.azure.net/secrets/swarm-join" in user_data
        assert ("-X PUT" in user_data) == (role == "manager")
        assert ("gateway-keys" in user_data) == (role == "manager")
        assert "RCLONE_AUTH_KEY" not in user_data
    waits = {
        r.inputs["secret"].rsplit("/", 1)[1]: r
        for r in run.of_type("pulumi-python:dynamic:Resource")
        if "expect" in r.inputs
    }
    assert waits["trackday-ready"].inputs["expect"] == {"bootstrap": "done"}
    assert waits["trackday-ready"].inputs["secret"].startswith(f"https://{vault}.vault.azure.net/")
    assert run.outputs["managerHostKey"].value.startswith("ssh-ed25519 ")
    assert plain_secret_leaks(run) == []
    # The trainer: its archive uploaded under its digest with the deployer's sign-in, the
    # manager asked (its VM's userData) to build that digest, the deploy waits until it has.
    (upload,) = [r for r in run.of_type("pulumi-python:dynamic:Resource") if "path" in r.inputs]
    digest = waits["trackday-trainer"].inputs["expect"]["digest"]
    assert upload.inputs["name"] == f"build/trainer-{digest}.tar.gz"
    assert upload.urn in waits["trackday-trainer"].dependencies
    assert hashlib.sha256(Path(upload.inputs["path"]).read_bytes()).hexdigest() == digest
    request = json.loads(base64.b64decode(vms["manager"].inputs["userData"]))
    data_identity = next(
        i
        for i in run.of_type("azure-native:managedidentity:UserAssignedIdentity")
        if i.name == "trackday-azure-identity"
    )
    assert request["bucket"] == f"{upload.inputs['account']}/{upload.inputs['container']}"
    assert request["object"] == upload.inputs["name"] and request["digest"] == digest
    assert request["identity"] == _client_id(data_identity)
    assert all("userData" not in vm.inputs for name, vm in vms.items() if name != "manager")
    assert run.outputs["image"].value == "trackday-donkeycar:5.3.0"
    assert [c for c in run.of_type("command:remote:Command")] == []
    assert run.of_type("command:remote:CopyToRemote") == []


def _principal(identity) -> str:
    from infra.offline import _uuid

    return _uuid(f"{identity.name}-principal")


def _client_id(identity) -> str:
    from infra.offline import _uuid

    return _uuid(f"{identity.name}-client")


def test_the_azure_manager_builds_the_requested_blob_once(tmp_path: Path) -> None:
    from tests.infra.test_join_store import BUILD_DOCKER

    data = trainer_build.source_archive(Path(__file__).resolve().parents[2])
    build = trainer_build.TrainerBuild(
        digest=trainer_build.digest(data),
        tag="trackday-donkeycar:5.3.0",
        build_args=(("DONKEYCAR", "5.3.0"),),
    )
    data_identity = "44444444-4444-4444-4444-444444444444"
    blobs = azure_standins.blob({("trackday", build.object_name): data}, {data_identity})
    node = azure_standins.imds({MANAGER, data_identity}, VM_ID)
    request = build.request("trackdaydata/trackday", data_identity)
    node.vm.user_data = base64.b64encode(request.encode()).decode()
    vault = azure_standins.Vault(officers={MANAGER}, users={})
    vault_server = azure_standins.key_vault(vault)
    for folder in ("bin", "run", "lib"):
        (tmp_path / folder).mkdir()
    (tmp_path / "bin" / "docker").write_text(BUILD_DOCKER)
    (tmp_path / "bin" / "docker").chmod(0o755)
    (tmp_path / "lib" / "bootstrap.done").touch()
    script = (
        trainer_build.build_script(STORE, MANAGER)
        .replace(join_store.AZURE_IMDS, f"http://127.0.0.1:{node.server_port}/metadata")
        .replace(trainer_build.BLOB_URL, f"http://127.0.0.1:{blobs.server_port}")
        .replace(VAULT, f"http://127.0.0.1:{vault_server.server_port}")
        .replace("/run/trackday", str(tmp_path / "run"))
        .replace("/var/lib/trackday", str(tmp_path / "lib"))
    )
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "BUILD_LOG": str(tmp_path / "build")}
    try:
        first = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
        assert first.returncode == 0, first.stderr
        args = (tmp_path / "build").read_text().splitlines()
        assert args[args.index("--tag") + 1] == "trackday-donkeycar:5.3.0"
        assert json.loads(vault.secrets[trainer_build.BUILT_SECRET]) == {
            "digest": build.digest,
            "vmId": VM_ID,
        }
        (tmp_path / "build").unlink()
        again = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
        assert again.returncode == 0 and not (tmp_path / "build").exists()
        # Another identity in the request cannot read the archive: a loud failure.
        (tmp_path / "lib" / "trainer.built").unlink()
        blobs.readers.clear()
        refused = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
        assert refused.returncode != 0 and "403" in refused.stderr
        # No request in the VM's userData: nothing to do.
        node.vm.user_data = ""
        idle = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
        assert idle.returncode == 0 and not (tmp_path / "build").exists()
    finally:
        for server in (blobs, node, vault_server):
            server.shutdown()
            server.server_close()


class _Answer:
    def __init__(self, status: int, value: dict | None = None):
        self.status_code = status
        self._body = {"value": json.dumps(value)} if value is not None else {}
        self.text = str(value)

    def json(self) -> dict:
        return self._body


def test_the_deploy_waits_for_this_managers_done_and_gives_up_clearly() -> None:
    from infra.targets import azure_ready

    props = {
        "secret": f"{VAULT}/secrets/trackday-ready",
        "instanceId": VM_ID,
        "expect": {"bootstrap": "done"},
        "minutes": 1,
    }
    done = {"bootstrap": "done", "hostKey": HOST_KEY}
    # Not written yet; then a replaced manager's old "done"; then this manager's.
    answers = [
        _Answer(404),
        _Answer(200, {**done, "vmId": "old"}),
        _Answer(200, {**done, "vmId": VM_ID}),
    ]
    urls: list[str] = []
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def get(url: str) -> _Answer:
        urls.append(url)
        return answers.pop(0)

    written = azure_ready.wait_for_secret(get, props, clock=lambda: now[0], sleep=sleep)
    assert written["hostKey"] == HOST_KEY
    assert urls == [f"{VAULT}/secrets/trackday-ready?api-version=7.4"] * 3
    with pytest.raises(TimeoutError, match=r"did not write \{'bootstrap': 'done'\}"):
        azure_ready.wait_for_secret(lambda url: _Answer(404), props, lambda: now[0], sleep)
    with pytest.raises(RuntimeError, match=r"HTTP 403.*Key Vault Secrets User"):
        azure_ready.wait_for_secret(lambda url: _Answer(403), props, lambda: now[0], sleep)


def test_the_vault_stand_in_refuses_what_key_vault_refuses(cloud) -> None:
    import urllib.error
    import urllib.request

    vault, servers, _tmp_path = cloud
    base = f"http://127.0.0.1:{servers['vault'].server_port}/secrets/swarm-join"
    token = azure_standins.imds_token(MANAGER, azure_standins.VAULT_RESOURCE)

    def status(url: str, headers: dict, body: bytes | None = None) -> int:
        request = urllib.request.Request(url, body, headers, method="PUT" if body else "GET")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status
        except urllib.error.HTTPError as error:
            return error.code

    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    assert status(f"{base}?api-version=7.4", {}) == 401
    other = azure_standins.imds_token(MANAGER, "https://management.azure.com/")
    assert status(f"{base}?api-version=7.4", {"Authorization": f"Bearer {other}"}) == 401
    assert status(f"{base}?api-version=2016-10-01", auth) == 400
    assert status(f"{base}?api-version=7.4", auth) == 404
    assert status(f"{base}?api-version=7.4", auth, b'{"value": "x", "kind": "y"}') == 400
    assert status(f"{base}?api-version=7.4", auth, b'{"value": "x"}') == 200
    assert vault.secrets == {"swarm-join": "x"}


def test_a_new_archive_replaces_the_uploaded_blob() -> None:
    from infra.targets.azure_upload import BlobUploadProvider

    old = {"account": "a", "container": "c", "name": "build/trainer-1.tar.gz", "digest": "1"}
    new = {**old, "name": "build/trainer-2.tar.gz", "digest": "2"}
    diff = BlobUploadProvider().diff("id", old, new)
    assert diff.changes and diff.replaces == ["digest", "name"]
    assert not BlobUploadProvider().diff("id", old, dict(old)).changes
