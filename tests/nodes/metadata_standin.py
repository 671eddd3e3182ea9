"""Strict stand-ins of the three clouds' metadata services, for the spot tests (test_spot.py).

Runs in a container on the nodes' test network at 169.254.169.254 (and, on the same network,
as metadata.google.internal), standard library only. Written from each cloud's documentation,
and refusing what the real service refuses:

- AWS instance metadata with IMDSv2 required (the stack's `http_tokens: required`; EC2 user
  guide "Use the Instance Metadata Service", "Spot Instance interruption notices"): a token
  only from `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds` 1..21600
  (400 otherwise), 401 for a GET without a valid token, 403 for a request carrying
  `X-Forwarded-For`, 405 for other methods; `spot/instance-action` is 404 until a notice is
  raised, then its JSON; `iam/security-credentials/` the role and its keys; `instance-id`.
- Google Cloud metadata ("About VM metadata", "Wait for change", "detect preemption"): 403
  without `Metadata-Flavor: Google` or with `X-Forwarded-For`, 405 for anything but GET; the
  answer carries `Metadata-Flavor: Google` and an `ETag`; `wait_for_change=true` returns at
  once when `last_etag` differs from the value's, else when the value changes or after
  `timeout_sec`.
- Azure Scheduled Events ("Scheduled Events for Linux VMs"): 400 without `Metadata: true`,
  with `X-Forwarded-For`, or without a known `api-version`; GET lists the events, POST takes
  `{"StartRequests": [{"EventId": ...}]}` for known events only; `instance/compute/name`.

The test drives it through files in STATE (written with `docker exec`): `aws-action.json`,
`gcp-preempted` (TRUE/FALSE), `azure-events.json` (the Events list), `azure-vm-name`,
`aws-role.json`; every request is appended to `requests.log` as one JSON line once answered,
and its method and path to `arrived.log` as it arrives (a Google Cloud wait is answered late).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

STATE = Path(sys.argv[1] if len(sys.argv) > 1 else "/state")
AWS_ROLE = "trackday-node"
AWS_INSTANCE_ID = "i-0123456789abcdef0"
AZURE_API_VERSIONS = {"2017-11-01", "2019-01-01", "2019-08-01", "2020-07-01"}
AZURE_IMDS_VERSIONS = {"2019-06-04", "2020-09-01", "2021-02-01", "2021-12-13", "2023-07-01"}
GCP_HOSTS = {"metadata.google.internal", "169.254.169.254"}
_tokens: dict[str, float] = {}
_log_lock = threading.Lock()


def _read(name: str) -> str | None:
    path = STATE / name
    return path.read_text() if path.exists() else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # the request log below replaces stderr
        pass

    def _answer(self, status: int, body: str = "", headers: dict[str, str] | None = None):
        data = body.encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        entry = {
            "method": self.command,
            "path": self.path,
            "host": self.headers.get("Host", ""),
            "status": status,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": getattr(self, "_body", ""),
        }
        with _log_lock, open(STATE / "requests.log", "a") as log:
            log.write(json.dumps(entry) + "\n")

    def do_GET(self) -> None:
        self._route()

    def do_PUT(self) -> None:
        self._route()

    def do_POST(self) -> None:
        self._route()

    def do_DELETE(self) -> None:
        self._route()

    def _route(self) -> None:
        with _log_lock, open(STATE / "arrived.log", "a") as log:
            log.write(f"{self.command} {self.path}\n")
        length = int(self.headers.get("Content-Length") or 0)
        self._body = self.rfile.read(length).decode(errors="replace") if length else ""
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path.startswith("/latest/"):
            self._aws(url.path, query)
        elif url.path.startswith("/computeMetadata/"):
            self._gcp(url.path, query)
        elif url.path.startswith("/metadata/"):
            self._azure(url.path, query)
        else:
            self._answer(404, "not found")

    # --- AWS -------------------------------------------------------------------------------

    def _aws(self, path: str, query: dict[str, str]) -> None:
        if "X-Forwarded-For" in self.headers:
            return self._answer(403, "Forbidden")
        if path == "/latest/api/token":
            if self.command != "PUT":
                return self._answer(405, "Method Not Allowed")
            ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
            if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
                return self._answer(400, "Bad Request")
            token = secrets.token_urlsafe(32)
            _tokens[token] = time.time() + int(ttl)
            return self._answer(200, token, {"X-aws-ec2-metadata-token-ttl-seconds": ttl})
        if self.command != "GET":
            return self._answer(405, "Method Not Allowed")
        token = self.headers.get("X-aws-ec2-metadata-token", "")
        if _tokens.get(token, 0) < time.time():
            return self._answer(401, "Unauthorized")
        if path == "/latest/meta-data/spot/instance-action":
            action = _read("aws-action.json")
            return self._answer(200, action) if action else self._answer(404, "Not Found")
        if path == "/latest/meta-data/iam/security-credentials/":
            return self._answer(200, AWS_ROLE)
        if path == "/latest/meta-data/instance-id":
            return self._answer(200, AWS_INSTANCE_ID)
        role = _read("aws-role.json")
        if path == f"/latest/meta-data/iam/security-credentials/{AWS_ROLE}" and role:
            return self._answer(200, role)
        return self._answer(404, "Not Found")

    # --- Google Cloud ----------------------------------------------------------------------

    def _gcp(self, path: str, query: dict[str, str]) -> None:
        flavor = {"Metadata-Flavor": "Google"}
        host = self.headers.get("Host", "").split(":")[0]
        if "X-Forwarded-For" in self.headers or host not in GCP_HOSTS:
            return self._answer(403, "Forbidden", flavor)
        if self.headers.get("Metadata-Flavor") != "Google":
            return self._answer(403, "Missing Metadata-Flavor:Google header.", flavor)
        if self.command != "GET":
            return self._answer(405, "Method Not Allowed", flavor)
        if path != "/computeMetadata/v1/instance/preempted":
            return self._answer(404, "Not Found", flavor)

        def current() -> tuple[str, str]:
            value = (_read("gcp-preempted") or "FALSE").strip()
            return value, hashlib.sha256(value.encode()).hexdigest()[:16]

        value, etag = current()
        if query.get("wait_for_change") == "true" and query.get("last_etag") in (None, etag):
            deadline = time.monotonic() + min(int(query.get("timeout_sec", "3600")), 3600)
            while current()[1] == etag and time.monotonic() < deadline:
                time.sleep(0.2)
            value, etag = current()
        self._answer(200, value, flavor | {"ETag": etag, "Content-Type": "application/text"})

    # --- Azure -----------------------------------------------------------------------------

    def _azure(self, path: str, query: dict[str, str]) -> None:
        def error(message: str) -> None:
            self._answer(400, json.dumps({"error": message}), {"Content-Type": "application/json"})

        if "X-Forwarded-For" in self.headers:
            return error("Request contains X-Forwarded-For header")
        if self.headers.get("Metadata") != "true":
            return error("Required metadata header not specified")
        if path == "/metadata/instance/compute/name":
            if query.get("api-version") not in AZURE_IMDS_VERSIONS:
                return error("Invalid or bad request: api-version")
            if self.command != "GET" or query.get("format") != "text":
                return error("Bad request: only format=text is answered here")
            return self._answer(200, (_read("azure-vm-name") or "").strip())
        if path != "/metadata/scheduledevents":
            return self._answer(404, "Not Found")
        if query.get("api-version") not in AZURE_API_VERSIONS:
            return error("Bad request. api-version was not specified or is not supported")
        events = json.loads(_read("azure-events.json") or "[]")
        if self.command == "POST":
            try:
                starts = json.loads(self._body)["StartRequests"]
                ids = [start["EventId"] for start in starts]
            except (ValueError, KeyError, TypeError):
                return error("Bad request: expected {StartRequests: [{EventId}]}")
            known = {event["EventId"] for event in events}
            if not ids or not set(ids) <= known:
                return error(f"Bad request: unknown EventId in {ids}")
            for event in events:
                if event["EventId"] in ids:
                    event["EventStatus"] = "Started"
            (STATE / "azure-events.json").write_text(json.dumps(events))
            return self._answer(200, "")
        if self.command != "GET":
            return error("Bad request: GET or POST")
        incarnation = int(hashlib.sha256(json.dumps(events).encode()).hexdigest()[:6], 16)
        document = {"DocumentIncarnation": incarnation, "Events": events}
        self._answer(200, json.dumps(document), {"Content-Type": "application/json"})


if __name__ == "__main__":
    STATE.mkdir(parents=True, exist_ok=True)
    ThreadingHTTPServer(("0.0.0.0", 80), Handler).serve_forever()
