"""A strict stand-in of what an Azure node's power-off script calls: the Instance Metadata Service
(IMDS) and Azure Resource Manager's deallocate. Runs as a script in a container on the nodes'
network (python3 of the noble base image, standard library only):

    python3 azure_api.py RESOURCE_ID CLIENT_ID CERT KEY RECORD

Written from Azure's documented formats, not from the script it serves:
- IMDS (learn.microsoft.com/azure/virtual-machines/instance-metadata-service): plain HTTP on
  169.254.169.254; every request needs the header `Metadata: true` and no X-Forwarded-For,
  else 400; an `api-version` is required and must be one IMDS knows, else 400; a leaf of the
  instance data (`/metadata/instance/compute/resourceId`) is text with `format=text`.
- Managed identity tokens (learn.microsoft.com/entra/identity/managed-identities-azure-resources/
  how-to-use-vm-token): GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=
  ...&client_id=... answers JSON with access_token, expires_in, expires_on, not_before,
  resource, token_type "Bearer"; an unknown client_id is an error (400, "Identity not found").
- Virtual Machines - Deallocate (learn.microsoft.com/rest/api/compute/virtual-machines/
  deallocate): POST https://management.azure.com{vm id}/deallocate?api-version=..., with a
  bearer token for https://management.azure.com/; 202 Accepted (with Location and
  Azure-AsyncOperation) starts it; without a valid token ARM answers 401.
Each deallocation accepted is appended to RECORD as one JSON line; every request is logged.
"""

from __future__ import annotations

import json
import secrets
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

# Versions IMDS documents (a subset: the ones up to those the clouds' images use today).
IMDS_VERSIONS = {"2017-08-01", "2018-02-01", "2019-06-01", "2020-09-01", "2021-02-01",
                 "2021-12-13", "2023-07-01"}  # fmt: skip
IDENTITY_VERSIONS = {"2018-02-01", "2019-08-01"}
ARM_VERSIONS = {"2023-09-01", "2024-03-01", "2024-07-01", "2024-11-01"}
ARM = "https://management.azure.com/"


class Api:
    def __init__(self, resource_id: str, client_id: str, record: str) -> None:
        self.resource_id, self.client_id, self.record = resource_id, client_id, record
        self.token = secrets.token_urlsafe(32)


def handler(api: Api, tls: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args) -> None:
            sys.stderr.write(f"{'arm' if tls else 'imds'}: {format % args}\n")

        def reply(self, status: int, body: str, kind: str = "application/json", **headers):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            self.wfile.write(data)

        def error(self, status: int, message: str) -> None:
            self.reply(status, json.dumps({"error": "bad_request", "error_description": message}))

        def arm_error(self, status: int, code: str) -> None:
            self.reply(status, json.dumps({"error": {"code": code, "message": code}}))

        def do_GET(self) -> None:
            if tls:
                return self.reply(405, "", "text/plain")
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            if self.headers.get("Metadata") != "true" or "X-Forwarded-For" in self.headers:
                return self.error(400, "Required metadata header not specified")
            version = query.get("api-version")
            if url.path == "/metadata/identity/oauth2/token":
                if version not in IDENTITY_VERSIONS:
                    return self.error(400, f"api-version {version} is invalid or missing")
                if query.get("resource") != ARM or query.get("client_id") != api.client_id:
                    return self.error(400, "Identity not found")
                now = int(time.time())
                token = {
                    "access_token": api.token, "refresh_token": "", "expires_in": "86400",
                    "expires_on": str(now + 86400), "not_before": str(now),
                    "resource": ARM, "token_type": "Bearer", "client_id": api.client_id,
                }  # fmt: skip
                return self.reply(200, json.dumps(token))
            if version not in IMDS_VERSIONS:
                return self.error(400, "Bad request. api-version is invalid or was not specified")
            if url.path == "/metadata/instance/compute/resourceId":
                if query.get("format") != "text":
                    return self.reply(200, json.dumps(api.resource_id))
                return self.reply(200, api.resource_id, "text/plain")
            return self.error(404, f"no such path {url.path}")

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if not tls:
                return self.error(405, "Method not allowed")
            if self.headers.get("Authorization") != f"Bearer {api.token}":
                return self.arm_error(401, "InvalidAuthenticationToken")
            if query.get("api-version", [None])[-1] not in ARM_VERSIONS:
                return self.arm_error(400, "InvalidApiVersionParameter")
            if url.path != f"{api.resource_id}/deallocate":
                return self.arm_error(404, "ResourceNotFound")
            with open(api.record, "a") as record:
                record.write(json.dumps({"deallocate": api.resource_id, "at": time.time()}) + "\n")
            operation = f"https://management.azure.com/operations/{secrets.token_hex(8)}"
            return self.reply(202, "", Location=operation, Azure_AsyncOperation=operation)

    return Handler


def main(resource_id: str, client_id: str, cert: str, key: str, record: str) -> None:
    api = Api(resource_id, client_id, record)
    imds = ThreadingHTTPServer(("0.0.0.0", 80), handler(api, tls=False))
    arm = ThreadingHTTPServer(("0.0.0.0", 443), handler(api, tls=True))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    arm.socket = context.wrap_socket(arm.socket, server_side=True)
    threading.Thread(target=imds.serve_forever, daemon=True).start()
    sys.stderr.write("serving\n")
    arm.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:6])
