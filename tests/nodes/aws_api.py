"""What an aws node needs from AWS to form the swarm itself, beside the test nodes: the strict
Parameter Store and IMDSv2 stand-ins (ssm_api.py, in a container on the nodes' network) and
the plumbing that puts them where a node's user data looks for them, unchanged.

- Parameter Store at `https://ssm.<region>.amazonaws.com/`: the container's network alias,
  with a certificate signed by a CA made for the test, which each node trusts from its first
  boot (the CA in the node's system bundle, copied in before the node starts).
- IMDS at 169.254.169.254: a Docker network of that range cannot be held for the whole
  session (other node tests make their own, and Docker refuses overlapping networks), and an
  internal network drops packets to an address outside its subnet. So each node gets, before
  its first boot, a small forwarder unit (the hypervisor's part on EC2) that owns
  169.254.169.254 on its loopback and relays to the stand-in's port 80: the stand-in sees the
  node's own address and answers with that node's role.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from infra.bootstrap.join_store import HOST_KEY_FILE
from infra.targets import aws as aws_target
from infra.targets import aws_parameters
from tests.nodes import harness
from tests.nodes.harness import Cluster, docker, wait_for

SERVER = Path(__file__).with_name("ssm_api.py")
STANDINS = harness.ROOT / "tests" / "infra" / "aws_standins.py"
# botocore (the stand-ins verify signatures with it) and what it imports, all pure Python.
SITE = Path(botocore.__file__).resolve().parents[1]
PYTHON_PACKAGES = ("botocore", "dateutil", "jmespath", "urllib3", "six.py")
CA_FILE = "/usr/local/share/ca-certificates/trackday-test-aws.crt"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
FORWARDER = "/usr/local/sbin/trackday-test-imds"
FORWARDER_UNIT = "/etc/systemd/system/trackday-test-imds.service"
FORWARDER_SCRIPT = """\
#!/usr/bin/python3
# Test plumbing (tests/nodes/aws_api.py): IMDS's address on this node, relayed to the stand-in.
import socket, subprocess, sys, threading
subprocess.run(["ip", "addr", "add", "169.254.169.254/32", "dev", "lo"], check=False)
listener = socket.create_server(("169.254.169.254", 80))
def relay(source, sink):
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
while True:
    client, _ = listener.accept()
    upstream = socket.create_connection((sys.argv[1], 80))
    threading.Thread(target=relay, args=(client, upstream), daemon=True).start()
    threading.Thread(target=relay, args=(upstream, client), daemon=True).start()
"""
REGION = "us-east-1"  # the shipped aws stack's
ACCOUNT = "123456789012"  # the mocks' (infra/offline.py)


@dataclass
class AwsApi:
    container: str
    folder: Path
    node_files: dict[str, Path]  # what Cluster.boot copies into each node before it starts

    def parameters(self) -> dict[str, Any]:
        mirror = self.folder / "state" / "parameters.json"
        return json.loads(mirror.read_text()) if mirror.exists() else {}

    def log(self) -> str:
        return docker("logs", self.container, check=False).stderr[-4000:]


def node_role(name: str, role: str, address: str | None, keys: tuple[str, str, str]) -> dict:
    """A node's role as the program grants it, with its credentials (`keys`: access key,
    secret key, session token) and the address its IMDS requests come from."""
    join = f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/trackday/aws/{aws_parameters.JOIN}"
    policy = aws_target.node_policy(
        "arn:aws:s3:::trackday-test", None, aws_parameters.ssm_policy(role, join)
    )
    access_key, secret_key, token = keys
    return {
        "name": name,
        "statements": json.loads(policy)["Statement"],
        "access_key": access_key,
        "secret_key": secret_key,
        "token": token,
        "address": address,
        "instance_id": f"i-0{hashlib.sha256(name.encode()).hexdigest()[:16]}",
    }


def start(cluster: Cluster, address: str, roles: list[dict], forward_imds: bool = True) -> AwsApi:
    """The stand-in at `address` on the cluster's network, with the stack's parameters."""
    folder = cluster.folder / "aws-api"
    (folder / "state").mkdir(parents=True)
    host = f"ssm.{REGION}.amazonaws.com"
    ca = _certificates(folder, host)
    path = aws_parameters.parameter_path("aws")
    placeholder = aws_parameters.PLACEHOLDER
    parameters = {
        f"{path}/{aws_parameters.JOIN}": {"Value": placeholder, "Type": "SecureString"},
        f"{path}/trackday-ready": {"Value": placeholder, "Type": "String"},
        f"{path}/trackday-trainer": {"Value": placeholder, "Type": "String"},
    }
    config = {"region": REGION, "roles": roles, "parameters": parameters}
    (folder / "config.json").write_text(json.dumps(config))
    python = [arg for p in PYTHON_PACKAGES for arg in ("--volume", f"{SITE / p}:/py/{p}:ro")]
    container = cluster.stand_in(
        "aws-api", address, cluster.image,
        ["/ssm_api.py", "/api/config.json", "/api/ssm.pem", "/api/ssm.key", "/api/state"],
        ("--network-alias", host, "--entrypoint", "python3", "--env", "PYTHONPATH=/py",
         "--volume", f"{SERVER}:/ssm_api.py:ro", "--volume", f"{STANDINS}:/aws_standins.py:ro",
         "--volume", f"{folder}:/api", *python),
    )  # fmt: skip
    api = AwsApi(container, folder, _node_files(cluster, folder, ca, address, forward_imds))
    serving = lambda: "serving" in docker("logs", container, check=False).stderr  # noqa: E731
    wait_for("the AWS stand-in", serving, 120, api.log)
    return api


def wait_for_swarm(api: AwsApi, cluster: Cluster) -> harness.Swarm:
    """Every node bootstrapped, every worker joined and labelled by the manager's timer; the
    workers' node IDs and the host key the manager published (what `pulumi up` reads)."""
    start_time = time.monotonic()
    for node in cluster.nodes.values():
        node.wait_bootstrapped()
    manager = cluster.nodes["manager"]
    listing = "docker node ls --format '{{.Hostname}} {{.ID}}'"
    labelled = "docker node ls --filter node.label=trackday.role --quiet | wc -l"

    def formed() -> bool:
        return manager.root(labelled).strip() == str(len(cluster.nodes))

    wait_for("every node joined and labelled", formed, 300, lambda: api.log() + manager.log())
    ids = dict(line.split() for line in manager.root(listing).splitlines())
    ready = json.loads(api.parameters()["/trackday/aws/trackday-ready"]["Value"])
    assert ready["hostKey"] == " ".join(manager.root(f"cat {HOST_KEY_FILE}").split()[:2])
    node_ids = {key: ids[key] for key in cluster.nodes if key != "manager"}
    return harness.Swarm(node_ids, ready["hostKey"], time.monotonic() - start_time)


def _node_files(
    cluster: Cluster, folder: Path, ca: bytes, address: str, forward_imds: bool
) -> dict[str, Path]:
    bundle = docker("run", "--rm", "--entrypoint", "cat", cluster.image, CA_BUNDLE).stdout
    (folder / "bundle.crt").write_bytes(bundle.encode() + ca)
    (folder / "ca.crt").write_bytes(ca)
    files = {CA_FILE: folder / "ca.crt", CA_BUNDLE: folder / "bundle.crt"}
    if forward_imds:
        (folder / "forwarder").write_text(FORWARDER_SCRIPT)
        (folder / "forwarder").chmod(0o755)
        unit = (
            "[Unit]\nDescription=trackday test: IMDS relayed to the stand-in\n"
            "\n"
            f"[Service]\nExecStart={FORWARDER} {address}\nRestart=always\nRestartSec=1\n\n"
            "[Install]\nWantedBy=multi-user.target\n"
        )
        (folder / "forwarder.service").write_text(unit)
        (folder / "wants").mkdir()
        (folder / "wants" / "trackday-test-imds.service").symlink_to(FORWARDER_UNIT)
        files |= {
            FORWARDER: folder / "forwarder",
            FORWARDER_UNIT: folder / "forwarder.service",
            "/etc/systemd/system/multi-user.target.wants/trackday-test-imds.service": folder
            / "wants"
            / "trackday-test-imds.service",
        }
    return files


def _certificates(folder: Path, host: str) -> bytes:
    """A test CA and `host`'s certificate signed by it (ssm.pem, ssm.key); the CA's PEM."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def certificate(subject: str, public: Any, extensions: list) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder().subject_name(name(subject))
            .issuer_name(name("trackday test AWS CA")).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
        )  # fmt: skip
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(ca_key, hashes.SHA256())

    pem = serialization.Encoding.PEM
    ca = certificate("trackday test AWS CA", ca_key.public_key(),
                     [(x509.BasicConstraints(ca=True, path_length=0), True)])  # fmt: skip
    server = certificate(host, key.public_key(), [
        (x509.SubjectAlternativeName([x509.DNSName(host)]), False),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
    ])  # fmt: skip
    (folder / "ssm.pem").write_bytes(server.public_bytes(pem))
    (folder / "ssm.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    for path in (folder / "ssm.pem", folder / "ssm.key"):
        path.chmod(0o644)  # read by the stand-in's server
    return ca.public_bytes(pem)


def cluster_roles(addresses: dict[str, str]) -> list[dict]:
    """Each node's role (the manager's, a worker's) by its key and address, with fresh keys."""
    return [
        node_role(
            f"trackday-{key}",
            "manager" if key == "manager" else "worker",
            address,
            (
                "ASIA" + secrets.token_hex(8).upper(),
                secrets.token_urlsafe(30),
                secrets.token_hex(40),
            ),
        )
        for key, address in addresses.items()
    ]
