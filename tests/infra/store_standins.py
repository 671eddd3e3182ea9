"""Strict loopback stand-ins for what a node's bootstrap talks to when the nodes form the swarm
themselves: GCP's metadata server, Secret Manager's REST API and the Docker Engine's
`POST /swarm/join`, each written from its documentation, refusing what the real one refuses.

- Metadata server (https://cloud.google.com/compute/docs/metadata/querying-metadata): every
  request needs `Metadata-Flavor: Google`; `instance/service-accounts/default/token` answers
  `{"access_token", "expires_in", "token_type": "Bearer"}`; guest attributes are PUT to
  `instance/guest-attributes/<namespace>/<key>`.
- Secret Manager v1: `POST /v1/projects/*/secrets/*:addVersion` with exactly
  `{"payload": {"data": <base64>}}` (plus optional `dataCrc32c`), `GET
  /v1/projects/*/secrets/*/versions/latest:access`; 401 without a bearer token, 403 when the
  identity lacks the permission (versions.add / versions.access), 404 while there is no version.
- Cloud Storage JSON API: `GET /storage/v1/b/{bucket}/o/{URL-encoded object}?alt=media`.
- Azure IMDS (https://learn.microsoft.com/entra/identity/managed-identities-azure-resources/
  how-to-use-vm-token): `GET /metadata/identity/oauth2/token?api-version=2018-02-01
  &resource=<url-encoded>&client_id=<id>` needs `Metadata: true`, 400 for an identity the VM
  does not have; answers `{"access_token", "expires_in", "resource", "token_type"}`;
  `instance/compute/vmId?api-version=2021-02-01&format=text` the VM's id
  (https://learn.microsoft.com/azure/virtual-machines/instance-metadata-service).
- Key Vault secrets 7.4 with RBAC (https://learn.microsoft.com/rest/api/keyvault/secrets/):
  `PUT /secrets/{name}?api-version=7.4` with `{"value"}` (and only contentType, attributes,
  tags besides), `GET /secrets/{name}?api-version=7.4`; 401 without a bearer token or with
  one for another resource, 400 for another api-version, 403 `ForbiddenByRbac` when the
  identity holds no role allowing it (Officer: set and get on the vault; User: get on a
  secret), 404 `SecretNotFound` before the secret exists.
- Docker Engine API SwarmJoin body: ListenAddr, AdvertiseAddr, DataPathAddr, RemoteAddrs,
  JoinToken (https://docs.docker.com/reference/api/engine/version/v1.47/#tag/Swarm).
"""

from __future__ import annotations

import base64
import binascii
import json
import socketserver
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

JOIN_FIELDS = {"ListenAddr", "AdvertiseAddr", "DataPathAddr", "RemoteAddrs", "JoinToken"}


@dataclass
class SecretStore:
    """One secret's versions and who may do what with it (by bearer token)."""

    name: str
    writers: set[str]
    readers: set[str]
    versions: list[bytes] = field(default_factory=list)
    log: list[tuple[str, int]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._answer(status, {"error": {"code": status, "message": message}})

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


class _SecretManager(_Handler):
    def _identity(self) -> str | None:
        header = self.headers.get("Authorization", "")
        return header.removeprefix("Bearer ") if header.startswith("Bearer ") else None

    def _handle(self, method: str) -> int:
        store: SecretStore = self.server.store
        identity = self._identity()
        prefix = f"/v1/{store.name}"
        if identity is None:
            self._error(401, "Request is missing required authentication credential.")
            return 401
        if method == "POST" and self.path == f"{prefix}:addVersion":
            body = self._body()
            if identity not in store.writers:
                self._error(403, "Permission 'secretmanager.versions.add' denied")
                return 403
            if self.headers.get("Content-Type") != "application/json":
                self._error(400, "Content-Type must be application/json")
                return 400
            try:
                request = json.loads(body)
                payload = request["payload"]
                if set(request) != {"payload"} or not set(payload) <= {"data", "dataCrc32c"}:
                    raise ValueError(f"unknown fields in {sorted(request)} / {sorted(payload)}")
                data = base64.b64decode(payload["data"], validate=True)
            except (ValueError, KeyError, TypeError, binascii.Error) as error:
                self._error(400, f"Invalid JSON payload received. {error}")
                return 400
            store.versions.append(data)
            name = f"{store.name}/versions/{len(store.versions)}"
            self._answer(200, {"name": name, "state": "ENABLED"})
            return 200
        if method == "GET" and self.path == f"{prefix}/versions/latest:access":
            if identity not in store.readers:
                self._error(403, "Permission 'secretmanager.versions.access' denied")
                return 403
            if not store.versions:
                self._error(404, f"Secret Version [{prefix[4:]}/versions/latest] not found.")
                return 404
            data = base64.b64encode(store.versions[-1]).decode()
            name = f"{store.name}/versions/{len(store.versions)}"
            self._answer(200, {"name": name, "payload": {"data": data}})
            return 200
        self._error(404, f"no such method {method} {self.path}")
        return 404

    def do_GET(self) -> None:
        self.server.store.log.append(("GET", self._handle("GET")))

    def do_POST(self) -> None:
        self.server.store.log.append(("POST", self._handle("POST")))


@dataclass
class Vault:
    """One Key Vault's secrets (latest value by name) and its RBAC role assignments: Officers
    (vault scope: set and get) and Users by secret (get only), by identity."""

    officers: set[str]
    users: dict[str, set[str]]
    secrets: dict[str, str] = field(default_factory=dict)
    log: list[tuple[str, str, int]] = field(default_factory=list)


VAULT_RESOURCE = "https://vault.azure.net"
SECRET_FIELDS = {"value", "contentType", "attributes", "tags"}


def imds_token(client_id: str, resource: str) -> str:
    """The access token the IMDS stand-in issues: which identity, for which resource."""
    return f"{client_id}@{resource}"


class _KeyVault(_Handler):
    def _error(self, status: int, message: str, code: str = "BadParameter") -> None:
        self._answer(status, {"error": {"code": code, "message": message}})

    def _handle(self, method: str) -> tuple[str, int]:
        vault: Vault = self.server.vault
        path, _, query = self.path.partition("?")
        name = path.removeprefix("/secrets/")
        header = self.headers.get("Authorization", "")
        identity, _, resource = header.removeprefix("Bearer ").partition("@")
        if not header.startswith("Bearer ") or resource != VAULT_RESOURCE:
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

    def do_GET(self) -> None:
        self.server.vault.log.append(("GET", *self._handle("GET")))

    def do_PUT(self) -> None:
        self.server.vault.log.append(("PUT", *self._handle("PUT")))


class _Imds(_Handler):
    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        params = urllib.parse.parse_qs(query)
        if self.headers.get("Metadata") != "true":
            self._answer(
                400,
                {
                    "error": "invalid_request",
                    "error_description": "Required metadata header not specified",
                },
            )
            return
        compute = {
            "/metadata/instance/compute/vmId": ("2021-02-01", self.server.vm_id),
            "/metadata/instance/compute/userData": ("2021-01-01", self.server.user_data),
        }
        if path in compute:
            version, text = compute[path]
            if params != {"api-version": [version], "format": ["text"]}:
                self._answer(400, {"error": "Bad request", "path": self.path})
                return
            data = text.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if path != "/metadata/identity/oauth2/token" or params.get("api-version") != ["2018-02-01"]:
            self._answer(400, {"error": "invalid_request", "error_description": f"bad {self.path}"})
            return
        (client_id,) = params.get("client_id", [""])
        (resource,) = params.get("resource", [""])
        if client_id not in self.server.identities:
            self._answer(
                400, {"error": "invalid_request", "error_description": "Identity not found"}
            )
            return
        token = imds_token(client_id, resource)
        self._answer(
            200,
            {
                "access_token": token,
                "expires_in": "3599",
                "resource": resource,
                "token_type": "Bearer",
            },
        )


def key_vault(vault: Vault) -> HTTPServer:
    server = HTTPServer(("127.0.0.1", 0), _KeyVault)
    server.vault = vault  # type: ignore[attr-defined]
    return _serve(server)  # type: ignore[return-value]


def imds(identities: set[str], vm_id: str = "") -> HTTPServer:
    """One Azure VM's IMDS: tokens for the user-assigned identities (client ids) it has, its
    VM id (`instance/compute/vmId`)."""
    server = HTTPServer(("127.0.0.1", 0), _Imds)
    server.identities, server.vm_id = identities, vm_id  # type: ignore[attr-defined]
    server.user_data = ""  # type: ignore[attr-defined]  # the VM's userData (base64)
    return _serve(server)  # type: ignore[return-value]


class _Metadata(_Handler):
    def _allowed(self) -> bool:
        if self.headers.get("Metadata-Flavor") != "Google":
            self._error(403, "Missing Metadata-Flavor:Google header.")
            return False
        return True

    def do_GET(self) -> None:
        if not self._allowed():
            return
        custom = self.path.removeprefix("/computeMetadata/v1/instance/attributes/")
        if custom != self.path:
            if custom not in self.server.custom:
                self._error(404, "not found")
                return
            data = self.server.custom[custom].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if self.path != "/computeMetadata/v1/instance/service-accounts/default/token":
            self._error(404, "not found")
            return
        token = {"access_token": self.server.token, "expires_in": 3599, "token_type": "Bearer"}
        self._answer(200, token)

    def do_PUT(self) -> None:
        if not self._allowed():
            return
        prefix = "/computeMetadata/v1/instance/guest-attributes/"
        key = self.path.removeprefix(prefix)
        if key == self.path or key.count("/") != 1:
            self._error(400, "guest attributes are <namespace>/<key>")
            return
        self.server.attributes[key] = self._body().decode()
        self._answer(200, {})


class _Docker(_Handler):
    def do_POST(self) -> None:
        if self.path.split("/")[-2:] != ["swarm", "join"]:
            self._error(404, "page not found")
            return
        if self.headers.get("Content-Type") != "application/json":
            self._error(400, "Content-Type specified (None) must be 'application/json'")
            return
        body = json.loads(self._body())
        if not set(body) <= JOIN_FIELDS or not body.get("JoinToken"):
            self._error(400, f"bad join request {sorted(body)}")
            return
        self.server.joins.append(body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):  # BaseHTTPRequestHandler wants a (host, port) client address
        request, _ = super().get_request()
        return request, ("local", 0)


def _serve(server: socketserver.BaseServer) -> socketserver.BaseServer:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def secret_manager(store: SecretStore) -> HTTPServer:
    server = HTTPServer(("127.0.0.1", 0), _SecretManager)
    server.store = store  # type: ignore[attr-defined]
    return _serve(server)  # type: ignore[return-value]


def metadata(token: str) -> HTTPServer:
    """One node's metadata server: its identity's access token, its guest attributes."""
    server = HTTPServer(("127.0.0.1", 0), _Metadata)
    server.token = token  # type: ignore[attr-defined]
    server.attributes = {}  # type: ignore[attr-defined]
    server.custom = {}  # type: ignore[attr-defined]  # custom metadata (instance/attributes/)
    return _serve(server)  # type: ignore[return-value]


class _Blob(_Handler):
    """Blob storage Get Blob with a bearer token: `x-ms-version` required (400 without), the
    token for `https://storage.azure.com/` of an identity with a data role (403 else)."""

    def do_GET(self) -> None:
        header = self.headers.get("Authorization", "")
        identity, _, resource = header.removeprefix("Bearer ").partition("@")
        if not header.startswith("Bearer ") or resource != "https://storage.azure.com/":
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


def blob(objects: dict[tuple[str, str], bytes], readers: set[str]) -> HTTPServer:
    """One storage account's blob endpoint: (container, blob name) -> bytes."""
    server = HTTPServer(("127.0.0.1", 0), _Blob)
    server.objects, server.readers = objects, readers  # type: ignore[attr-defined]
    return _serve(server)  # type: ignore[return-value]


class _Storage(_Handler):
    """Cloud Storage JSON API objects.get with alt=media: the object's bytes to its readers."""

    def do_GET(self) -> None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            self._error(401, "Anonymous caller does not have storage.objects.get access")
            return
        path, _, query = self.path.partition("?")
        bucket, _, name = path.removeprefix("/storage/v1/b/").partition("/o/")
        if query != "alt=media" or "/" in name:  # the name must come URL-encoded
            self._error(400, f"bad request {self.path}")
            return
        if header.removeprefix("Bearer ") not in self.server.readers:
            self._error(403, "does not have storage.objects.get access")
            return
        data = self.server.objects.get((bucket, urllib.parse.unquote(name)))
        if data is None:
            self._error(404, "No such object")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def storage(objects: dict[tuple[str, str], bytes], readers: set[str]) -> HTTPServer:
    server = HTTPServer(("127.0.0.1", 0), _Storage)
    server.objects, server.readers = objects, readers  # type: ignore[attr-defined]
    return _serve(server)  # type: ignore[return-value]


def docker_engine(socket_path: str) -> socketserver.BaseServer:
    server = _UnixHTTPServer(socket_path, _Docker)
    server.joins = []  # type: ignore[attr-defined]
    return _serve(server)
