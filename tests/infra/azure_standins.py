"""Strict stand-ins of what an Azure node's bootstrap talks to: the Instance Metadata Service
(IMDS), Key Vault secrets with RBAC and Blob storage's Get Blob, each written from its
documentation, refusing what the real one refuses. Standard library only: the same handlers
serve on loopback (tests/infra/test_join_store_azure.py) and, over TLS at the clouds' own
names, on the node harness's test network (tests/nodes/azure_api.py runs them in containers).

- IMDS (https://learn.microsoft.com/azure/virtual-machines/instance-metadata-service): plain
  HTTP, answers only the VM that asks (here: by its address); 400 without `Metadata: true`,
  with `X-Forwarded-For`, or without an `api-version` IMDS knows; a leaf of the instance data
  (`instance/compute/vmId`, `resourceId`, `userData`: the latter from 2021-01-01) needs
  `format=text`. Tokens (https://learn.microsoft.com/entra/identity/managed-identities-azure-
  resources/how-to-use-vm-token): `GET /metadata/identity/oauth2/token?api-version=2018-02-01
  &resource=<url-encoded>&client_id=<id>` answers `{"access_token", "expires_in",
  "resource", "token_type"}`, 400 "Identity not found" for an identity the VM does not have.
- Key Vault secrets 7.4 with RBAC (https://learn.microsoft.com/rest/api/keyvault/secrets/):
  `PUT /secrets/{name}?api-version=7.4` with `{"value"}` (and only contentType, attributes,
  tags besides), `GET /secrets/{name}?api-version=7.4`; 401 without a bearer token or with
  one for another resource, 400 for another api-version, 403 when the identity holds no role
  allowing it (Key Vault Secrets Officer: set and get on the vault; Secrets User: get, here on
  one secret; https://learn.microsoft.com/azure/key-vault/general/rbac-guide), 404
  `SecretNotFound` before the secret exists.
- Get Blob with a bearer token (https://learn.microsoft.com/rest/api/storageservices/get-blob):
  a token for `https://storage.azure.com/`, `x-ms-version` required (400 without), 403 for an
  identity without a data role.

The tokens IMDS issues name their identity and resource (`imds_token`), which is how the
vault and the blob endpoint tell callers apart.
"""

from __future__ import annotations

import json
import os
import ssl
import threading
import urllib.parse
from dataclasses import asdict, dataclass, field
from http.server import ThreadingHTTPServer

from tests.infra.store_standins import JsonHandler

VAULT_RESOURCE = "https://vault.azure.net"
STORAGE_RESOURCE = "https://storage.azure.com/"
ARM_RESOURCE = "https://management.azure.com/"
SECRET_FIELDS = {"value", "contentType", "attributes", "tags"}
# Versions IMDS documents (a subset: those up to what the clouds' images use today).
IMDS_VERSIONS = {"2017-08-01", "2018-02-01", "2019-06-01", "2020-09-01", "2021-01-01",
                 "2021-02-01", "2021-12-13", "2023-07-01"}  # fmt: skip
USER_DATA_SINCE = "2021-01-01"  # IMDS serves userData from this version on
IDENTITY_VERSIONS = {"2018-02-01", "2019-08-01"}
Address = tuple[str, int]
LOOPBACK: Address = ("127.0.0.1", 0)


def imds_token(client_id: str, resource: str) -> str:
    """The access token the IMDS stand-in issues: which identity, for which resource."""
    return f"{client_id}@{resource}"


def caller(header: str, resource: str) -> str | None:
    """The identity a bearer header carries, when its token is one IMDS issued for `resource`."""
    identity, _, audience = header.removeprefix("Bearer ").partition("@")
    return identity if header.startswith("Bearer ") and audience == resource else None


@dataclass
class Vault:
    """One Key Vault's secrets (latest value by name) and its RBAC role assignments: Officers
    (vault scope: set and get) and Users by secret (get only), by identity. Each answered
    request is logged (method, secret, status, identity); with `state_file`, the secrets and
    the log are written there (JSON) after each one."""

    officers: set[str]
    users: dict[str, set[str]]
    secrets: dict[str, str] = field(default_factory=dict)
    log: list[tuple[str, str, int, str]] = field(default_factory=list)
    state_file: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, method: str, name: str, status: int, identity: str) -> None:
        with self._lock:
            self.log.append((method, name, status, identity))
            if self.state_file:
                state = {"secrets": self.secrets, "log": self.log}
                with open(f"{self.state_file}.new", "w") as out:
                    json.dump(state, out)
                os.replace(f"{self.state_file}.new", self.state_file)


class KeyVaultApi(JsonHandler):
    def _error(self, status: int, message: str, code: str = "BadParameter") -> None:
        self._answer(status, {"error": {"code": code, "message": message}})

    def _handle(self, method: str, identity: str | None) -> tuple[str, int]:
        vault: Vault = self.server.vault
        path, _, query = self.path.partition("?")
        name = path.removeprefix("/secrets/")
        if identity is None:
            self._error(401, "AKV10000: Request is missing a Bearer or PoP token.", "Unauthorized")
            return name, 401
        if urllib.parse.parse_qs(query) != {"api-version": ["7.4"]}:
            self._error(400, f"The specified version ({query}) is not recognized.")
            return name, 400
        if name == path or not name or "/" in name:
            self._error(404, f"no such path {path}", "NotFound")
            return name, 404
        if method == "PUT":
            body = self._body()
            if identity not in vault.officers:
                self._error(403, "Caller is not authorized: secrets/set", "Forbidden")
                return name, 403
            if self.headers.get("Content-Type") != "application/json":
                self._error(400, "Content-Type must be application/json")
                return name, 400
            try:
                request = json.loads(body)
                if not set(request) <= SECRET_FIELDS or not isinstance(request["value"], str):
                    raise ValueError(f"bad fields {sorted(request)}")
            except (ValueError, KeyError, TypeError) as error:
                self._error(400, f"Invalid request body: {error}")
                return name, 400
            vault.secrets[name] = request["value"]
            self._answer(200, {"value": request["value"], "id": name, "attributes": {}})
            return name, 200
        if identity not in vault.officers and identity not in vault.users.get(name, set()):
            self._error(403, "Caller is not authorized: secrets/get", "Forbidden")
            return name, 403
        if name not in vault.secrets:
            self._error(404, f"A secret with (name/id) {name} was not found.", "SecretNotFound")
            return name, 404
        self._answer(200, {"value": vault.secrets[name], "id": name, "attributes": {}})
        return name, 200

    def _serve(self, method: str) -> None:
        identity = caller(self.headers.get("Authorization", ""), VAULT_RESOURCE)
        name, status = self._handle(method, identity)
        self.server.vault.record(method, name, status, identity or "")

    def do_GET(self) -> None:
        self._serve("GET")

    def do_PUT(self) -> None:
        self._serve("PUT")


@dataclass
class VirtualMachine:
    """What IMDS tells one VM: the user-assigned identities (client ids) it has, its VM id,
    its userData (base64, as ARM holds it) and its resource id."""

    identities: set[str]
    vm_id: str = ""
    user_data: str = ""
    resource_id: str = ""


class ImdsApi(JsonHandler):
    def _text(self, text: str) -> None:
        data = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _bad(self, message: str, error: str = "invalid_request") -> None:
        self._answer(400, {"error": error, "error_description": message})

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        params = {k: v[-1] for k, v in urllib.parse.parse_qs(query).items()}
        if self.headers.get("Metadata") != "true" or "X-Forwarded-For" in self.headers:
            return self._bad("Required metadata header not specified")
        vm: VirtualMachine | None = self.server.vms.get(self.client_address[0])
        if vm is None:
            return self._answer(404, {"error": f"no VM at {self.client_address[0]}"})
        version = params.get("api-version")
        if path == "/metadata/identity/oauth2/token":
            if version not in IDENTITY_VERSIONS:
                return self._bad(f"api-version {version} is invalid or missing")
            client_id, resource = params.get("client_id", ""), params.get("resource", "")
            if client_id not in vm.identities or not resource:
                return self._bad("Identity not found")
            token = {"access_token": imds_token(client_id, resource), "expires_in": "3599",
                     "resource": resource, "token_type": "Bearer"}  # fmt: skip
            return self._answer(200, token)
        leaves = {"vmId": vm.vm_id, "resourceId": vm.resource_id, "userData": vm.user_data}
        leaf = path.removeprefix("/metadata/instance/compute/")
        if leaf not in leaves:
            return self._answer(404, {"error": "Not found", "path": path})
        if version not in IMDS_VERSIONS or (leaf == "userData" and version < USER_DATA_SINCE):
            return self._bad("Bad request. api-version is invalid or was not specified", "Bad")
        if set(params) != {"api-version", "format"} or params["format"] != "text":
            return self._bad("format=text is required for a leaf", "Bad request")
        return self._text(leaves[leaf])


class BlobApi(JsonHandler):
    """Get Blob with a bearer token: `x-ms-version` required (400 without), the token for
    `https://storage.azure.com/` of an identity with a data role (403 else)."""

    def do_GET(self) -> None:
        identity = caller(self.headers.get("Authorization", ""), STORAGE_RESOURCE)
        if identity is None:
            self._error(401, "Server failed to authenticate the request.")
            return
        if not self.headers.get("x-ms-version"):
            self._error(400, "MissingRequiredHeader: x-ms-version")
            return
        if identity not in self.server.readers:
            self._error(403, "AuthorizationPermissionMismatch")
            return
        container, _, name = self.path.lstrip("/").partition("/")
        data = self.server.objects.get((container, name))
        if data is None:
            self._error(404, "BlobNotFound")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve(
    handler: type[JsonHandler],
    address: Address = LOOPBACK,
    tls: ssl.SSLContext | None = None,
    **state: object,
) -> ThreadingHTTPServer:
    """`handler` served from a thread at `address` (over TLS with `tls`), `state` its
    server's attributes."""
    server = ThreadingHTTPServer(address, handler)
    server.daemon_threads = True
    if tls is not None:  # the handshake in the request's thread, not in accept()
        server.socket = tls.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
    for name, value in state.items():
        setattr(server, name, value)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def key_vault(vault: Vault, address: Address = LOOPBACK, tls: ssl.SSLContext | None = None):
    return serve(KeyVaultApi, address, tls, vault=vault)


def imds(identities: set[str], vm_id: str = "") -> ThreadingHTTPServer:
    """One Azure VM's IMDS on loopback (`.vm`: what it answers, changeable)."""
    vm = VirtualMachine(identities, vm_id)
    return serve(ImdsApi, vm=vm, vms={LOOPBACK[0]: vm})


def blob(objects: dict[tuple[str, str], bytes], readers: set[str]) -> ThreadingHTTPServer:
    """One storage account's blob endpoint: (container, blob name) -> bytes."""
    return serve(BlobApi, objects=objects, readers=readers)


def vm_from_json(data: dict) -> VirtualMachine:
    return VirtualMachine(**{**data, "identities": set(data["identities"])})


def vm_to_json(vm: VirtualMachine) -> dict:
    return asdict(vm) | {"identities": sorted(vm.identities)}
