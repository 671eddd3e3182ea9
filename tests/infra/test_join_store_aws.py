"""AWS's nodes form the swarm through Parameter Store (issue 11 item 2): the rendered bootstrap
sections run (bash, real curl with --aws-sigv4, jq) against strict loopback stand-ins of IMDSv2,
SSM and S3 that verify every signature with botocore's signer (tests/infra/aws_standins.py),
with the IAM policies the program writes."""

from __future__ import annotations

import base64
import datetime
import gzip
import json
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from infra.bootstrap import aws_store, join_store, shell_script, trainer_build
from infra.bootstrap.spec import JoinStore
from infra.targets import aws as aws_target
from infra.targets import aws_parameters, aws_ready
from tests.infra import aws_standins
from tests.infra.stacks import plain_secret_leaks, run_stack, with_keys
from tests.infra.test_join_store import (
    BUILD_DOCKER,
    FAKE_DOCKER,
    MANAGER_IP,
    TOKEN,
    WORKER_IP,
    _wait_until,
)

SPOT = "aws:ec2/spotInstanceRequest:SpotInstanceRequest"
REGION = "eu-west-1"
BUCKET = "trackday-test-bucket"
JOIN = "/trackday/dev/swarm-join"
READY = "/trackday/dev/trackday-ready"
BUILT = "/trackday/dev/trackday-trainer"
REQUEST = "/trackday/dev/trainer-request"
ARN = f"arn:aws:ssm:{REGION}:{aws_standins.ACCOUNT}:parameter{JOIN}"
STORE = JoinStore("aws", ARN)
INSTANCE = "i-0123456789abcdef0"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq7wrFzfOn0XQ3qgKj1TAm1ZcA0IQH2HKxq4V1f1l3M"


def _role(name: str, role: str | None) -> aws_standins.Role:
    """A role with the policy the program gives a node of `role` (None: the bucket only)."""
    ssm = aws_parameters.ssm_policy(role, ARN) if role else []
    policy = aws_target.node_policy(f"arn:aws:s3:::{BUCKET}", None, ssm)
    return aws_standins.Role(name, json.loads(policy)["Statement"])


@pytest.fixture
def cloud(tmp_path: Path):
    """The account (the stack's parameters, each node's role), each node's IMDS, SSM, S3,
    the worker's Docker Engine, a `docker` CLI and the node env file."""
    roles = {
        "manager": _role("trackday-manager", "manager"),
        "worker": _role("trackday-worker", "worker"),
        "stranger": _role("trackday-stranger", None),
    }
    account = aws_standins.Account(REGION, list(roles.values()))
    account.put(JOIN, aws_parameters.PLACEHOLDER, "SecureString")
    account.put(READY, aws_parameters.PLACEHOLDER)
    servers = {
        "ssm": aws_standins.ssm(account),
        "s3": aws_standins.s3(account),
        **{node: aws_standins.imds(role, INSTANCE) for node, role in roles.items()},
        "engine": store_engine(tmp_path),
    }
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "docker").write_text(FAKE_DOCKER)
    (tmp_path / "bin" / "docker").chmod(0o755)
    (tmp_path / "state").write_text("inactive\n")
    (tmp_path / "node.env").write_text(f"TRACKDAY_PRIVATE_IP={WORKER_IP}\n")
    (tmp_path / "host_key.pub").write_text(f"{HOST_KEY} root@manager\n")
    yield account, servers, tmp_path
    for server in servers.values():
        server.shutdown()
        server.server_close()


def store_engine(tmp_path: Path):
    from tests.infra import store_standins

    return store_standins.docker_engine(str(tmp_path / "docker.sock"))


def _localised(script: str, servers: dict, tmp_path: Path, node: str) -> str:
    """A node script pointed at the stand-ins instead of AWS and Docker."""
    return (
        script.replace(aws_store.AWS_IMDS, f"http://127.0.0.1:{servers[node].server_port}/latest")
        .replace(aws_store.ssm_endpoint(ARN), f"http://127.0.0.1:{servers['ssm'].server_port}/")
        .replace(
            aws_store.s3_endpoint(ARN), f"http://127.0.0.1:{servers['s3'].server_port}/$bucket"
        )
        .replace(join_store.DOCKER_SOCKET, str(tmp_path / "docker.sock"))
        .replace(join_store.HOST_KEY_FILE, str(tmp_path / "host_key.pub"))
        .replace("/run/trackday/node.env", str(tmp_path / "node.env"))
        .replace(f"sleep {join_store.JOIN_POLL_SECONDS}", "sleep 0.1")
    )


def _run(section: str, servers: dict, tmp_path: Path, node: str, address: str):
    script = _localised(
        shell_script("test", join_store.store_auth(STORE) + section), servers, tmp_path, node
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


def test_a_worker_waits_for_the_managers_token_then_joins(cloud) -> None:
    account, servers, tmp_path = cloud
    del account.parameters[JOIN]  # not created yet: ParameterNotFound is "not yet" too
    worker = _run(join_store.join_section(STORE), servers, tmp_path, "worker", WORKER_IP)
    _wait_until(
        lambda: ("GetParameter", JOIN, 400, "ParameterNotFound") in account.log, "a first read"
    )
    account.put(JOIN, aws_parameters.PLACEHOLDER, "SecureString")  # the stack's placeholder
    _wait_until(lambda: ("GetParameter", JOIN, 200, "") in account.log, "a placeholder read")
    assert servers["engine"].joins == [] and worker.poll() is None
    manager = _run(join_store.publish_section(STORE), servers, tmp_path, "manager", MANAGER_IP)
    assert manager.wait(60) == 0, manager.stderr.read()
    assert account.parameters[JOIN]["Type"] == "SecureString"
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


def test_a_worker_cannot_write_and_a_stranger_cannot_read(cloud) -> None:
    account, servers, tmp_path = cloud
    worker = _run(join_store.publish_section(STORE), servers, tmp_path, "worker", WORKER_IP)
    _out, err = worker.communicate(timeout=60)
    assert worker.returncode != 0 and "AccessDeniedException" in err
    assert account.parameters[JOIN]["Value"] == aws_parameters.PLACEHOLDER
    stranger = _run(join_store.join_section(STORE), servers, tmp_path, "stranger", WORKER_IP)
    _out, err = stranger.communicate(timeout=60)
    assert stranger.returncode == 1
    assert f"reading the join token from {JOIN} failed (HTTP 400): AccessDeniedException" in err
    assert servers["engine"].joins == []


def test_the_manager_publishes_done_with_its_host_key_and_instance_id(cloud) -> None:
    account, servers, tmp_path = cloud
    manager = _run(join_store.ready_section(STORE), servers, tmp_path, "manager", MANAGER_IP)
    assert manager.wait(60) == 0, manager.stderr.read()
    written = json.loads(account.parameters[READY]["Value"])
    assert written == {"bootstrap": "done", "hostKey": HOST_KEY, "vmId": INSTANCE}
    assert account.parameters[READY]["Type"] == "String"


def test_the_deploy_reads_done_with_boto3_through_the_same_checks(cloud) -> None:
    """The deployer's wait (boto3, signed by botocore) against the same stand-in: this
    manager's "done" is taken, a refusal names the permission."""
    account, servers, tmp_path = cloud
    deployer = aws_standins.Role(
        "deployer",
        [
            {
                "Effect": "Allow",
                "Action": "ssm:GetParameter",
                "Resource": account.parameter_arn(READY),
            }
        ],
    )
    account.roles.append(deployer)
    manager = _run(join_store.ready_section(STORE), servers, tmp_path, "manager", MANAGER_IP)
    assert manager.wait(60) == 0, manager.stderr.read()
    endpoint = f"http://127.0.0.1:{servers['ssm'].server_port}"

    def client(role: aws_standins.Role):
        return aws_ready.boto3_get(
            REGION,
            endpoint_url=endpoint,
            aws_access_key_id=role.access_key,
            aws_secret_access_key=role.secret_key,
            aws_session_token=role.token,
        )

    props = {"parameter": READY, "instanceId": INSTANCE, "expect": {"bootstrap": "done"}}
    written = aws_ready.wait_for_parameter(client(deployer), {**props, "minutes": 1})
    assert written["hostKey"] == HOST_KEY
    with pytest.raises(RuntimeError, match=r"needs ssm:GetParameter on arn:aws:ssm:eu-west-1"):
        aws_ready.wait_for_parameter(client(account.roles[2]), {**props, "minutes": 1})


def test_the_deploy_waits_for_this_managers_done_and_gives_up_clearly() -> None:
    done = {"bootstrap": "done", "hostKey": HOST_KEY}
    answers = [
        None,
        "{}",
        json.dumps({**done, "vmId": "i-old"}),
        json.dumps({**done, "vmId": INSTANCE}),
    ]
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    props = {"parameter": READY, "instanceId": INSTANCE, "expect": {"bootstrap": "done"}}
    written = aws_ready.wait_for_parameter(
        lambda name: answers.pop(0), {**props, "minutes": 1}, lambda: now[0], sleep
    )
    assert written["vmId"] == INSTANCE and answers == []
    with pytest.raises(TimeoutError, match=rf"did not write \{{'bootstrap': 'done'\}} to {READY}"):
        aws_ready.wait_for_parameter(
            lambda name: None, {**props, "minutes": 1}, lambda: now[0], sleep
        )


def test_the_manager_builds_the_requested_archive_once(cloud) -> None:
    account, servers, tmp_path = cloud
    data = trainer_build.source_archive(Path(__file__).resolve().parents[2])
    build = trainer_build.TrainerBuild(
        digest=trainer_build.digest(data),
        tag="trackday-donkeycar:5.3.0",
        build_args=(("BASE", "tensorflow/tensorflow:2.15.0-gpu"),),
    )
    account.objects[(BUCKET, build.object_name)] = data
    for folder in ("run", "lib"):
        (tmp_path / folder).mkdir()
    (tmp_path / "bin" / "docker").write_text(BUILD_DOCKER)
    (tmp_path / "lib" / "bootstrap.done").touch()
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "BUILD_LOG": str(tmp_path / "build")}

    def run(node: str = "manager") -> subprocess.CompletedProcess:
        script = (
            _localised(trainer_build.build_script(STORE), servers, tmp_path, node)
            .replace("/run/trackday", str(tmp_path / "run"))
            .replace("/var/lib/trackday", str(tmp_path / "lib"))
        )
        return subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)

    # No request yet: nothing to build.
    idle = run()
    assert idle.returncode == 0 and not (tmp_path / "build").exists(), idle.stderr
    account.put(REQUEST, build.request(BUCKET))
    first = run()
    assert first.returncode == 0, first.stderr
    args = (tmp_path / "build").read_text().splitlines()
    assert args[args.index("--tag") + 1] == "trackday-donkeycar:5.3.0"
    assert json.loads(account.parameters[BUILT]["Value"]) == {
        "digest": build.digest,
        "vmId": INSTANCE,
    }
    assert not (tmp_path / "run" / "building").exists()
    (tmp_path / "build").unlink()
    again = run()
    assert again.returncode == 0 and not (tmp_path / "build").exists()
    # A stranger's role may read neither the request nor the object.
    (tmp_path / "lib" / "trainer.built").unlink()
    refused = run("stranger")
    assert refused.returncode != 0 and "AccessDeniedException" in refused.stderr
    # A tampered archive is not built.
    account.objects[(BUCKET, build.object_name)] = data + b"x"
    tampered = run()
    assert tampered.returncode != 0 and not (tmp_path / "build").exists()


GET_JOIN = json.dumps({"Name": JOIN, "WithDecryption": True}).encode()


def _send(request: AWSRequest) -> tuple[int, str]:
    prepared = request.prepare()
    raw = urllib.request.Request(
        prepared.url, prepared.body, dict(prepared.headers), method=prepared.method
    )
    try:
        with urllib.request.urlopen(raw, timeout=30) as answer:
            return answer.status, ""
    except urllib.error.HTTPError as error:
        body = error.read().decode()
        return error.code, json.loads(body)["__type"] if body.startswith("{") else body


def test_the_stand_ins_refuse_what_aws_refuses(cloud) -> None:
    """botocore's own signature is accepted; any other scope, key, body, token or time is not,
    and IMDS wants its session token."""
    account, servers, _tmp_path = cloud
    worker = account.roles[1]

    def signed(credentials, region=REGION, service="ssm", port=servers["ssm"].server_port):
        request = AWSRequest(
            method="POST",
            url=f"http://127.0.0.1:{port}/",
            data=GET_JOIN,
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "AmazonSSM.GetParameter",
            },
        )
        SigV4Auth(credentials, service, region).add_auth(request)
        return request

    assert _send(signed(worker.credentials)) == (200, "")
    assert (
        _send(signed(worker.credentials, region="us-east-1"))[1] == "AuthorizationHeaderMalformed"
    )
    assert _send(signed(worker.credentials, service="s3"))[1] == "IncompleteSignature"
    no_token = Credentials(worker.access_key, worker.secret_key)
    assert _send(signed(no_token)) == (403, "InvalidClientTokenId")
    forged = Credentials(worker.access_key, "x" * 40, worker.token)
    assert _send(signed(forged)) == (403, "SignatureDoesNotMatch")
    tampered = signed(worker.credentials)
    tampered.data = json.dumps({"Name": READY}).encode()
    assert _send(tampered) == (403, "SignatureDoesNotMatch")
    account.clock_offset = datetime.timedelta(minutes=20)
    assert _send(signed(worker.credentials)) == (403, "RequestTimeTooSkewed")
    account.clock_offset = datetime.timedelta()
    # S3 wants the payload's hash header (botocore's S3 signer adds it; the plain one does not).
    get = AWSRequest(method="GET", url=f"http://127.0.0.1:{servers['s3'].server_port}/b/k")
    SigV4Auth(worker.credentials, "s3", REGION).add_auth(get)
    assert _send(get)[0] == 400 and "x-amz-content-sha256" in _send(get)[1]
    # IMDSv2: no token, no metadata; a token needs its TTL.
    imds = f"http://127.0.0.1:{servers['worker'].server_port}/latest"
    credentials = urllib.request.Request(f"{imds}/meta-data/iam/security-credentials/")
    assert _send_raw(credentials) == 401
    assert _send_raw(urllib.request.Request(f"{imds}/api/token", b"", method="PUT")) == 400


def _send_raw(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


POOL = {"nodes": {"count": 3}, "network": {"allowedCidrs": ["203.0.113.7/32"]}}


@pytest.fixture(scope="module")
def aws_pool():
    return run_stack("aws", with_keys("aws", **POOL))


def test_aws_deploy_runs_nothing_over_ssh_and_waits_through_parameter_store(aws_pool) -> None:
    run = aws_pool
    assert [r for r in run.resources if r.type.startswith("command:")] == []
    waits = {r.name.rsplit("-", 1)[1]: r for r in run.of_type("pulumi-python:dynamic:Resource")}
    assert sorted(waits) == ["built", "ready"]
    assert waits["ready"].inputs["parameter"] == "/trackday/aws/trackday-ready"
    assert waits["ready"].inputs["expect"] == {"bootstrap": "done"}
    # The archive uploaded under its digest is the one the request names and the wait expects.
    (upload,) = run.of_type("aws:s3/bucketObjectv2:BucketObjectv2")
    data = trainer_build.source_archive(Path(__file__).resolve().parents[2])
    digest = trainer_build.digest(data)
    assert upload.inputs["key"] == f"build/trainer-{digest}.tar.gz"
    assert waits["built"].inputs["expect"] == {"digest": digest}
    parameters = {p.inputs["name"]: p for p in run.of_type("aws:ssm/parameter:Parameter")}
    # The provider marks every parameter's value secret (a plain String too).
    request = json.loads(run.raw_inputs[parameters["/trackday/aws/trainer-request"].urn]["value"])
    assert request["object"] == upload.inputs["key"] and request["digest"] == digest
    join = parameters["/trackday/aws/swarm-join"]
    assert join.inputs["type"] == "SecureString"
    assert run.raw_inputs[join.urn]["value"] == aws_parameters.PLACEHOLDER
    assert plain_secret_leaks(run) == []


def test_aws_parameters_are_written_by_the_manager_and_read_by_workers_only(aws_pool) -> None:
    run = aws_pool
    arn = "arn:aws:ssm:us-east-1:123456789012:parameter/trackday/aws"
    policies = {
        p.name.split("-identity-")[1].split("-")[0]: json.loads(p.inputs["policy"])["Statement"]
        for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
    }
    ssm = {
        role: [s for s in st if s["Action"][0].startswith("ssm:")] for role, st in policies.items()
    }
    assert ssm == {
        "manager": [
            {
                "Effect": "Allow",
                "Action": ["ssm:PutParameter"],
                "Resource": [
                    f"{arn}/swarm-join",
                    f"{arn}/trackday-ready",
                    f"{arn}/trackday-trainer",
                ],
            },
            {
                "Effect": "Allow",
                "Action": ["ssm:GetParameter"],
                "Resource": [f"{arn}/trainer-request"],
            },
        ],
        "worker": [
            {"Effect": "Allow", "Action": ["ssm:GetParameter"], "Resource": [f"{arn}/swarm-join"]}
        ],
    }
    profiles = {p.name: p for p in run.of_type("aws:iam/instanceProfile:InstanceProfile")}
    nodes = {n.name.rsplit("-nodes-", 1)[1]: n for n in run.of_type(SPOT)}
    assert set(nodes) == {"manager", "worker-1", "worker-2"}
    for name, node in nodes.items():
        role = "manager" if name == "manager" else "worker"
        (profile,) = [p for n, p in profiles.items() if n.endswith(f"-{role}-profile")]
        assert node.inputs["iamInstanceProfile"] == profile.name
        user_data = gzip.decompress(base64.b64decode(node.inputs["userDataBase64"])).decode()
        assert (
            f"{arn}/swarm-join"[len("arn:aws:ssm:us-east-1:123456789012:parameter") :] in user_data
        )
        assert "PRIVATE KEY" not in user_data and 'AccessKeyId"' not in user_data


def test_a_lone_aws_manager_has_no_worker_role() -> None:
    run = run_stack("aws", with_keys("aws", nodes={"count": 1}))
    assert [
        p.name.split("-identity-")[1] for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
    ] == ["manager-policy"]


def test_a_node_whose_curl_signs_too_few_headers_stops_and_says_why(cloud) -> None:
    """Ubuntu 22.04's curl 7.81 leaves headers out of SigV4: the node refuses to call AWS."""
    _, servers, tmp_path = cloud
    real_curl = shutil.which("curl")
    (tmp_path / "bin" / "curl").write_text(
        "#!/bin/bash\n"
        'if [ "$1" = --version ]; then echo "curl 7.81.0 (x86_64-pc-linux-gnu)"; exit 0; fi\n'
        f'exec {real_curl} "$@"\n'
    )
    (tmp_path / "bin" / "curl").chmod(0o755)
    worker = _run(join_store.join_section(STORE), servers, tmp_path, "worker", WORKER_IP)
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 1
    assert "curl 7.81.0" in err and f"needs curl >= {aws_store.MIN_CURL}" in err
    assert servers["engine"].joins == []
