"""An Azure node deallocates itself through the cloud's APIs when its idle timer fires.

The node boots the Azure stack's rendered user data. Its power-off script (infra/bootstrap/
power.py) asks the Instance Metadata Service at 169.254.169.254 for the VM's resource ID and a
token of the VM's identity, then calls ARM's deallocate at https://management.azure.com. Both
are a strict stand-in here (azure_api.py, written from Azure's documented formats) in one
container: on a second network of the test's own, 169.254.169.0/24, at 169.254.169.254 (a VM
reaches IMDS on its link, so does the node); management.azure.com resolves to it in the node's
/etc/hosts, and its TLS certificate is signed by a CA made for this test, which the node trusts
(installed with update-ca-certificates; nothing else in the node changes). The idle timer is
made to fire as test_timers.py does: the node has been idle since 31 minutes ago.
"""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from infra.bootstrap import IDLE_SINCE_FILE
from tests.nodes import harness
from tests.nodes.harness import BASE_IMAGE, TEST_LABEL, Node, wait_for
from tests.nodes.render import SshKey, render

pytestmark = [pytest.mark.docker, pytest.mark.nodes, pytest.mark.timeout(600)]

IMDS = "169.254.169.254"
ARM_HOST = "management.azure.com"
CA_FILE = "/usr/local/share/ca-certificates/trackday-test.crt"
RESOURCE_ID = (
    "/subscriptions/00000000-0000-4000-8000-000000000000/resourceGroups/trackday-azure"
    "/providers/Microsoft.Compute/virtualMachines/trackday-azure-nodes-manager"
)
SERVER = Path(__file__).with_name("azure_api.py")


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_certificates(folder: Path) -> Path:
    """A test CA (ca.crt) and ARM's certificate for management.azure.com signed by it."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())

    def certificate(subject: str, public, issuer: str, extensions) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
            .public_key(public).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
        )  # fmt: skip
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(ca_key, hashes.SHA256())

    ca = certificate("trackday test CA", ca_key.public_key(), "trackday test CA",
                     [(x509.BasicConstraints(ca=True, path_length=0), True)])  # fmt: skip
    arm = certificate(ARM_HOST, key.public_key(), "trackday test CA", [
        (x509.SubjectAlternativeName([x509.DNSName(ARM_HOST)]), False),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
    ])  # fmt: skip
    pem = serialization.Encoding.PEM
    (folder / "ca.crt").write_bytes(ca.public_bytes(pem))
    (folder / "arm.pem").write_bytes(arm.public_bytes(pem))
    (folder / "arm.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    for path in folder.iterdir():
        path.chmod(0o644)  # read by the stand-in's server
    return folder


def http_code(node: Node, curl_args: str) -> str:
    return node.root(f"curl -s -o /dev/null -w '%{{http_code}}' {curl_args}").strip()


def test_the_idle_timer_deallocates_an_azure_node_through_imds_and_arm(
    node_image: str, ssh_key: SshKey, tmp_path: Path
) -> None:
    stack = render("azure", ssh_key, nodes={"count": 1}, deepracer={"opengl": False})
    user_data = stack.node("manager").user_data
    client_id = re.search(r"^\s*client_id=(\S+)$", user_data, re.MULTILINE).group(1)
    certs = make_certificates(tmp_path)
    (tmp_path / "record").mkdir()
    record = tmp_path / "record" / "calls.jsonl"
    cluster = harness.new_cluster(node_image, "10.42.8.0/24", ssh_key)
    link = f"{cluster.name}-link"
    harness.docker("network", "create", "--internal", "--label", TEST_LABEL,
                   "--subnet", "169.254.169.0/24", link)  # fmt: skip
    try:
        api = cluster.stand_in(
            "azure-api", "10.42.8.2", BASE_IMAGE,
            ["python3", "/azure_api.py", RESOURCE_ID, client_id, "/certs/arm.pem",
             "/certs/arm.key", f"/record/{record.name}"],
            ("--volume", f"{SERVER}:/azure_api.py:ro", "--volume", f"{certs}:/certs:ro",
             "--volume", f"{record.parent}:/record"),
        )  # fmt: skip
        harness.docker("network", "connect", "--ip", IMDS, link, api)
        node = cluster.boot("manager", user_data, "10.42.8.10")
        harness.docker("network", "connect", link, node.container)
        node.wait_bootstrapped()
        harness.docker("cp", str(certs / "ca.crt"), f"{node.container}:{CA_FILE}")
        node.root(f"update-ca-certificates && echo '{IMDS} {ARM_HOST}' >> /etc/hosts")

        # The stand-in is strict: what Azure refuses, it refuses.
        token_url = (
            f"'http://{IMDS}/metadata/identity/oauth2/token?api-version=2018-02-01"
            f"&resource=https://{ARM_HOST}/&client_id={client_id}'"
        )
        leaf = f"'http://{IMDS}/metadata/instance/compute/resourceId?format=text"
        assert http_code(node, f"{leaf}&api-version=2021-02-01'") == "400"  # no Metadata header
        assert http_code(node, f"-H Metadata:true {leaf}&api-version=2010-01-01'") == "400"
        assert http_code(node, f"-H Metadata:true {leaf}'") == "400"  # no api-version
        assert http_code(node, token_url) == "400"
        deallocate = f"'https://{ARM_HOST}{RESOURCE_ID}/deallocate?api-version=2024-07-01'"
        assert http_code(node, f"-X POST -H 'Authorization: Bearer wrong' {deallocate}") == "401"
        assert not record.exists()

        since = int(datetime.datetime.now().timestamp()) - 31 * 60
        node.root(f"echo {since} > {IDLE_SINCE_FILE}")
        api_log = lambda: harness.docker("logs", api, check=False).stderr + node.log()  # noqa: E731
        wait_for("the deallocate call", record.exists, 300, api_log)
        calls = [json.loads(line) for line in record.read_text().splitlines()]
        assert calls[0]["deallocate"] == RESOURCE_ID
        journal = node.root("journalctl --no-pager -t trackday")
        assert "deallocating this VM" in journal and "deallocation failed" not in journal
        assert node.running()  # Azure powers it off once deallocated; the script did not
    finally:
        if not harness.keep_nodes():
            cluster.down()
            harness.docker("network", "rm", link, check=False)
