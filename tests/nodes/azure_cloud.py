"""Azure beside the booted nodes: IMDS, the stack's Key Vault, its blob endpoint and ARM, as the
program declared them, at the addresses and names a VM reaches them at.

`declared` reads the offline run of the program (render.py): each VM's identities (client ids,
as the mocks make them), its userData, the vault's name and the secrets the deployer creates
(the join placeholder, the gateway's key file), and the vault's role assignments as the
program grants them (Key Vault Secrets Officer at the vault's scope, Secrets User at a
secret's) with each principal mapped to its identity's client id; the deployer's own grant is
left out (it is no node). `AzureCloud.start` runs the stand-ins (azure_api.py, the strict
handlers of tests/infra/azure_standins.py) in containers of the test's own on the nodes'
network, under the clouds' names (Docker's DNS answers `<vault>.vault.azure.net`,
`management.azure.com` and `<account>.blob.core.windows.net` there), over TLS with a
certificate of a CA made for the test, and IMDS at 169.254.169.254 on a link network. `boot`
gives a node that CA (in the system bundle, as update-ca-certificates would make it) and its
address on the link network, by which IMDS knows which VM asks, before its first boot.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from infra import offline
from infra.targets.azure_storage import BLOB_DATA_CONTRIBUTOR
from infra.targets.azure_vault import SECRETS_OFFICER, SECRETS_USER
from tests.infra.azure_standins import VirtualMachine, vm_to_json
from tests.nodes import harness
from tests.nodes.harness import BASE_IMAGE, TEST_LABEL, Cluster, Node, docker
from tests.nodes.render import Rendered, pool_key

LINK_SUBNET = "169.254.169.0/24"
IMDS_ADDRESS = "169.254.169.254"
ARM_HOST = "management.azure.com"
CA_FILE = "/usr/local/share/ca-certificates/trackday-test.crt"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
SUBSCRIPTION = "00000000-0000-4000-8000-000000000000"
DEALLOCATE = "Microsoft.Compute/virtualMachines/deallocate/action"
SERVICES = ("imds", "vault", "blob", "arm")
_IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"


@dataclass(frozen=True)
class Declared:
    """What the program declared that Azure would serve the nodes."""

    vault_host: str
    storage_host: str
    secrets: dict[str, str]
    officers: set[str]
    users: dict[str, set[str]]
    vms: dict[str, VirtualMachine]  # by pool key ("manager", "worker-1")
    own_identity: dict[str, str]  # pool key: the client id of the VM's own identity
    deallocators: dict[str, set[str]]  # ARM resource id: client ids allowed to deallocate it
    blob_readers: set[str]  # client ids with a data role on the storage account


def declared(rendered: Rendered) -> Declared:
    run = rendered.run

    def inputs(type_: str) -> dict[str, dict]:
        return {r.name: run.raw_inputs[r.urn] for r in run.of_type(type_)}

    clients, by_principal = {}, {}
    for name, raw in inputs(_IDENTITY).items():
        made = offline._COMPUTED[_IDENTITY](name, raw)
        clients[f"{name}-id"] = made["clientId"]
        by_principal[made["principalId"]] = made["clientId"]
    (vault_name,) = [raw["vaultName"] for raw in inputs("azure-native:keyvault:Vault").values()]
    vault_id = next(f"{n}-id" for n in inputs("azure-native:keyvault:Vault"))
    secrets = inputs("azure-native:keyvault:Secret")
    secret_ids = {f"{name}-id": raw["secretName"] for name, raw in secrets.items()}
    ((account_resource, account),) = [
        (f"{n}-id", raw["accountName"])
        for n, raw in inputs("azure-native:storage:StorageAccount").items()
    ]
    deallocating = {
        f"{name}-id"
        for name, raw in inputs("azure-native:authorization:RoleDefinition").items()
        if any(DEALLOCATE in p["actions"] for p in raw["permissions"])
    }
    vms, own, resource_ids = {}, {}, {}
    for name, raw in inputs("azure-native:compute:VirtualMachine").items():
        key = pool_key(name)
        ids = raw["identity"]["userAssignedIdentities"]
        resource_ids[f"{name}-id"] = (
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{raw['resourceGroupName']}"
            f"/providers/Microsoft.Compute/virtualMachines/{name}"
        )
        own[key] = clients[ids[0]]  # its own identity first (infra/targets/azure_nodes.py)
        vms[key] = VirtualMachine(
            {clients[i] for i in ids}, str(uuid.uuid4()), raw.get("userData", ""),
            resource_ids[f"{name}-id"],
        )  # fmt: skip
    officers: set[str] = set()
    users: dict[str, set[str]] = {}
    deallocators: dict[str, set[str]] = {}
    blob_readers: set[str] = set()
    for raw in inputs("azure-native:authorization:RoleAssignment").values():
        client = by_principal.get(raw["principalId"])
        role, scope = raw["roleDefinitionId"].rsplit("/", 1)[-1], raw["scope"]
        if client is None:
            continue  # the deployer's: no node has its identity
        if role == SECRETS_OFFICER and scope == vault_id:
            officers.add(client)
        elif role == SECRETS_USER and scope in secret_ids:
            users.setdefault(secret_ids[scope], set()).add(client)
        elif raw["roleDefinitionId"] in deallocating and scope in resource_ids:
            deallocators.setdefault(resource_ids[scope], set()).add(client)
        elif role == BLOB_DATA_CONTRIBUTOR and scope == account_resource:
            blob_readers.add(client)
        elif role in (SECRETS_OFFICER, SECRETS_USER):
            raise AssertionError(f"a vault role the harness does not model: {raw}")
    return Declared(
        vault_host=f"{vault_name}.vault.azure.net",
        storage_host=f"{account}.blob.core.windows.net",
        secrets={raw["secretName"]: raw["properties"]["value"] for raw in secrets.values()},
        officers=officers,
        users=users,
        vms=vms,
        own_identity=own,
        deallocators=deallocators,
        blob_readers=blob_readers,
    )


def make_certificates(folder: Path, hosts: list[str]) -> None:
    """A test CA (ca.crt) and one server certificate for `hosts` signed by it (tls.pem,
    tls.key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trackday test CA")])

    def certificate(subject: x509.Name, public, extensions) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(public).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
        )  # fmt: skip
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(ca_key, hashes.SHA256())

    ca = certificate(issuer, ca_key.public_key(),
                     [(x509.BasicConstraints(ca=True, path_length=0), True)])  # fmt: skip
    server = certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]), key.public_key(), [
            (x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), False),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        ],
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    (folder / "ca.crt").write_bytes(ca.public_bytes(pem))
    (folder / "tls.pem").write_bytes(server.public_bytes(pem))
    (folder / "tls.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@dataclass
class AzureCloud:
    """The running stand-ins: boot nodes against them, read the vault, change its grants."""

    cluster: Cluster
    cloud: Declared
    folder: Path
    link: str
    containers: dict[str, str] = field(default_factory=dict)
    link_addresses: dict[str, str] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        cluster: Cluster,
        rendered: Rendered,
        blobs: dict[tuple[str, str], bytes] | None = None,
        user_data: dict[str, str] | None = None,
    ) -> AzureCloud:
        """The stand-ins for `rendered`'s VMs, at the cluster subnet's addresses .2 to .5;
        `blobs` ((container, name): bytes) in the storage account, `user_data` (pool key:
        base64) in the place of a VM's userData."""
        cloud = declared(rendered)
        for key, data in (user_data or {}).items():
            cloud.vms[key].user_data = data
        folder = cluster.folder / "azure"
        folder.mkdir()
        hosts = [cloud.vault_host, ARM_HOST, cloud.storage_host]
        make_certificates(folder, hosts)
        link = f"{cluster.name}-link"
        docker("network", "create", "--internal", "--label", TEST_LABEL,
               "--subnet", LINK_SUBNET, link)  # fmt: skip
        self = cls(cluster, cloud, folder, link)
        link_base = ipaddress.ip_network(LINK_SUBNET).network_address
        vms = {}
        for offset, (key, vm) in enumerate(cloud.vms.items(), start=10):  # .1: the gateway
            self.link_addresses[key] = address = str(link_base + offset)
            vms[address] = vm_to_json(vm)
        (folder / "cloud.json").write_text(json.dumps({
            "vms": vms, "secrets": cloud.secrets,
            "deallocators": {vm: sorted(ids) for vm, ids in cloud.deallocators.items()},
            "blobs": {"readers": sorted(cloud.blob_readers), "objects": [
                [c, n, base64.b64encode(d).decode()] for (c, n), d in (blobs or {}).items()
            ]},
        }))  # fmt: skip
        self.grant(cloud.officers, cloud.users)
        for path in folder.iterdir():
            path.chmod(0o644)  # read by the stand-ins
        names = {"vault": cloud.vault_host, "blob": cloud.storage_host, "arm": ARM_HOST}
        for offset, service in enumerate(SERVICES, start=2):
            address = str(cluster.subnet.network_address + offset)
            alias = ("--network-alias", names[service]) if service in names else ()
            self.containers[service] = cluster.stand_in(
                f"azure-{service}", address, BASE_IMAGE,
                ["python3", "-m", "tests.nodes.azure_api", service, "/cloud"],
                (*alias, "--volume", f"{harness.ROOT}:/repo:ro", "--workdir", "/repo",
                 "--volume", f"{folder}:/cloud"),
            )  # fmt: skip
        docker("network", "connect", "--ip", IMDS_ADDRESS, link, self.containers["imds"])
        for service, container in self.containers.items():
            harness.wait_for(
                f"the {service} stand-in",
                lambda c=container: "serving" in docker("logs", c, check=False).stderr,
                120,
                lambda c=container: docker("logs", c, check=False).stderr,
            )
        return self

    def boot(self, key: str, user_data: str, address: str) -> Node:
        """Boot the node the program calls `key` as that VM: it trusts the test's CA and
        reaches IMDS as itself."""
        bundle = self.folder / "ca-bundle.crt"
        if not bundle.exists():
            system = docker("run", "--rm", "--entrypoint", "cat", self.cluster.image, CA_BUNDLE)
            bundle.write_text(system.stdout + (self.folder / "ca.crt").read_text())
        files = {CA_FILE: self.folder / "ca.crt", CA_BUNDLE: bundle}
        networks = {self.link: self.link_addresses[key]}
        return self.cluster.boot(key, user_data, address, files=files, networks=networks)

    def grant(self, officers: set[str], users: dict[str, set[str]]) -> None:
        """Make these the vault's role assignments (the stand-in reads them at once)."""
        grants = {"officers": sorted(officers), "users": {k: sorted(v) for k, v in users.items()}}
        (self.folder / "grants.json.new").write_text(json.dumps(grants))
        (self.folder / "grants.json.new").rename(self.folder / "grants.json")

    def vault(self) -> dict:
        """The vault's secrets and request log ([method, secret, status, identity], in order)."""
        path = self.folder / "vault.json"
        return json.loads(path.read_text()) if path.exists() else {"secrets": {}, "log": []}

    def deallocations(self) -> list[dict]:
        path = self.folder / "arm.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def logs(self) -> str:
        return "".join(
            f"--- {service}\n{docker('logs', '--tail', '40', c, check=False).stderr}"
            for service, c in self.containers.items()
        )

    def down(self) -> None:
        """After the cluster's own `down` (which removes the stand-ins)."""
        docker("network", "rm", self.link, check=False)
