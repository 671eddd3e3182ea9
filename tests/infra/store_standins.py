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
- Docker Engine API SwarmJoin body: ListenAddr, AdvertiseAddr, DataPathAddr, RemoteAddrs,
  JoinToken (https://docs.docker.com/reference/api/engine/version/v1.47/#tag/Swarm).

Azure's (IMDS, Key Vault, Blob storage) are in azure_standins.py, on this module's JsonHandler.
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


class JsonHandler(BaseHTTPRequestHandler):
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


class _SecretManager(JsonHandler):
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


class _Metadata(JsonHandler):
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


class _Docker(JsonHandler):
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


class _Storage(JsonHandler):
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
