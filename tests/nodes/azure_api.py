"""Azure's services on the nodes' test network, one per container, run as

    python3 -m tests.nodes.azure_api SERVICE FOLDER

(the repository mounted read-only, python3 of the noble base image, standard library only).
SERVICE is `imds` (plain HTTP on port 80, at 169.254.169.254 on the nodes' link network),
`vault` (Key Vault secrets), `blob` (Get Blob) or `arm` (deallocate), each over TLS on port 443
with FOLDER's tls.pem/tls.key, a certificate of the test's own CA for the clouds' names.

IMDS, Key Vault and Blob are the strict handlers of tests/infra/azure_standins.py, the ones the
loopback tests use; what they serve comes from FOLDER/cloud.json (azure_cloud.py writes it from
the program's resources): each VM by its address on the link network, the vault's first
secrets, the blobs. The vault's role assignments are FOLDER/grants.json, read again whenever
it changes (a test withholds a role, as Azure does while an assignment propagates); its
secrets and request log go to FOLDER/vault.json after every request.

ARM's deallocate (https://learn.microsoft.com/rest/api/compute/virtual-machines/deallocate):
`POST https://management.azure.com{vm id}/deallocate?api-version=...` with a bearer token for
`https://management.azure.com/`; 401 without a valid token, 403 when the identity holds no
role on that VM, 202 Accepted (Location, Azure-AsyncOperation) otherwise, recorded as a JSON
line in FOLDER/arm.jsonl.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.infra import azure_standins as azure
from tests.infra.store_standins import JsonHandler

ARM_VERSIONS = {"2023-09-01", "2024-03-01", "2024-07-01", "2024-11-01"}
GRANTS_POLL_S = 0.2


class ArmApi(JsonHandler):
    def _arm_error(self, status: int, code: str) -> None:
        self._answer(status, {"error": {"code": code, "message": code}})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        identity = azure.caller(self.headers.get("Authorization", ""), azure.ARM_RESOURCE)
        if identity is None:
            return self._arm_error(401, "InvalidAuthenticationToken")
        if parse_qs(url.query).get("api-version", [None])[-1] not in ARM_VERSIONS:
            return self._arm_error(400, "InvalidApiVersionParameter")
        vm, _, action = url.path.rpartition("/")
        if action != "deallocate" or vm not in self.server.deallocators:
            return self._arm_error(404, "ResourceNotFound")
        if identity not in self.server.deallocators[vm]:
            return self._arm_error(403, "AuthorizationFailed")
        with open(self.server.folder / "arm.jsonl", "a") as record:
            record.write(json.dumps({"deallocate": vm, "by": identity, "at": time.time()}) + "\n")
        operation = f"https://management.azure.com/operations/{secrets.token_hex(8)}"
        self.send_response(202)
        for name in ("Location", "Azure-AsyncOperation"):
            self.send_header(name, operation)
        self.send_header("Content-Length", "0")
        self.end_headers()


def _follow_grants(vault: azure.Vault, grants: Path) -> None:
    """Keep the vault's role assignments those of `grants` (written whole, by rename)."""
    seen = None
    while True:
        stamp = grants.stat().st_mtime_ns
        if stamp != seen:
            data = json.loads(grants.read_text())
            vault.officers = set(data["officers"])
            vault.users = {name: set(ids) for name, ids in data["users"].items()}
            seen = stamp
            sys.stderr.write(f"vault: role assignments {data}\n")
        time.sleep(GRANTS_POLL_S)


def main(service: str, folder: Path) -> None:
    cloud = json.loads((folder / "cloud.json").read_text())
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(folder / "tls.pem", folder / "tls.key")
    https = ("0.0.0.0", 443)
    if service == "imds":
        vms = {address: azure.vm_from_json(vm) for address, vm in cloud["vms"].items()}
        server = azure.serve(azure.ImdsApi, ("0.0.0.0", 80), vms=vms)
    elif service == "vault":
        vault = azure.Vault(
            set(), {}, dict(cloud["secrets"]), state_file=str(folder / "vault.json")
        )
        threading.Thread(
            target=_follow_grants, args=(vault, folder / "grants.json"), daemon=True
        ).start()
        server = azure.key_vault(vault, https, tls)
    elif service == "blob":
        objects = {
            (container, name): base64.b64decode(data)
            for container, name, data in cloud["blobs"]["objects"]
        }
        server = azure.serve(
            azure.BlobApi, https, tls, objects=objects, readers=set(cloud["blobs"]["readers"])
        )
    elif service == "arm":
        deallocators = {vm: set(ids) for vm, ids in cloud["deallocators"].items()}
        server = azure.serve(ArmApi, https, tls, deallocators=deallocators, folder=folder)
    else:
        raise SystemExit(f"unknown service {service!r}: imds, vault, blob or arm")
    sys.stderr.write(f"{service}: serving on port {server.server_address[1]}\n")
    threading.Event().wait()


if __name__ == "__main__":
    os.umask(0o022)  # the test reads what the stand-in writes
    main(sys.argv[1], Path(sys.argv[2]))
