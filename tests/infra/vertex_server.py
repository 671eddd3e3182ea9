"""A strict loopback stand-in for the two Google APIs `trackday donkey submit` calls.

Vertex AI (create and get a custom job, REST v1) and Cloud Logging (entries:list, v2) have
no emulator; this server answers their REST calls on 127.0.0.1 as the services do where it
matters, so the real google-cloud-aiplatform client and the real HTTP calls are exercised:

- a job is parsed into the SDK's own `aiplatform_v1.CustomJob` proto: an unknown or
  malformed field is a 400 INVALID_ARGUMENT, as the service answers;
- a job goes QUEUED -> PENDING -> RUNNING -> the scripted final state, one step per `get`
  (JobState in the v1 reference);
- entries:list accepts only its documented request fields, pages by `nextPageToken` (a
  small page here, so that paging is exercised), honours `timestamp>=`/`timestamp>` in the
  filter, and delivers `late_lines` only a while after the job ended, as Cloud Logging
  delivers a container's last lines late;
- `errors` makes a call answer 400, 403 or 429 with Google's error body.

References: cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.customJobs,
cloud.google.com/logging/docs/reference/v2/rest/v2/entries/list (pageSize at most 1000).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.cloud import aiplatform_v1
from google.protobuf import json_format

STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND"}
STATUS[429] = "RESOURCE_EXHAUSTED"
LIST_FIELDS = {"resourceNames", "projectIds", "filter", "orderBy", "pageSize", "pageToken"}
_SINCE = re.compile(r'timestamp(>=?)"([^"]+)"')


@dataclass
class VertexFake:
    endpoint: str = ""
    final_state: str = "JOB_STATE_SUCCEEDED"
    error: str = ""
    created: list[dict[str, Any]] = field(default_factory=list)
    log_requests: list[dict[str, Any]] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=lambda: ["epoch 1/2", "epoch 2/2", "uploaded"])
    # Lines written last, delivered only on the second log request after the job ended.
    late_lines: list[str] = field(default_factory=list)
    page_size: int = 2
    # "create", "get" or "logs" -> (HTTP status, message): that call is refused.
    errors: dict[str, tuple[int, str]] = field(default_factory=dict)
    gets: int = 0
    requests_after_end: int = 0

    def states(self) -> list[str]:
        return ["JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_RUNNING", self.final_state]

    def ended(self) -> bool:
        return self.gets >= len(self.states())

    def entries(self) -> list[dict[str, Any]]:
        """Every entry delivered so far, oldest first."""
        lines = list(self.log_lines)
        if self.requests_after_end >= 2:
            lines += self.late_lines
        return [
            {
                "insertId": f"id{i}",
                "timestamp": f"2026-01-01T00:00:{i // 2:02d}Z",  # two entries per second
                "textPayload": line + "\n",
            }
            for i, line in enumerate(lines)
        ]


def _error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": STATUS.get(code, "UNKNOWN")}}


@contextmanager
def serve_vertex() -> Iterator[VertexFake]:
    fake = VertexFake()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _reply(self, body: dict[str, Any], status: int = 200) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _refused(self, call: str) -> bool:
            if call in fake.errors:
                self._reply(_error(*fake.errors[call]), fake.errors[call][0])
                return True
            return False

        def _job(self, name: str) -> dict[str, Any]:
            job = dict(fake.created[-1])
            step = min(fake.gets, len(fake.states()) - 1)
            job.update(name=name, state=fake.states()[step])
            if step == len(fake.states()) - 1 and fake.error:
                job["error"] = {"code": 9, "message": fake.error}
            return job

        def _create(self, path: str, body: dict[str, Any]) -> None:
            try:  # the SDK's own proto type: unknown or mistyped fields are refused
                job = json_format.ParseDict(body, aiplatform_v1.CustomJob.pb()())
            except json_format.ParseError as exc:
                self._reply(_error(400, f"Invalid JSON payload received. {exc}"), 400)
                return
            pools = job.job_spec.worker_pool_specs
            if not job.display_name or not pools or not pools[0].container_spec.image_uri:
                message = "display_name, a worker pool and its container image are required"
                self._reply(_error(400, message), 400)
                return
            fake.created.append(body)
            parent = path.removeprefix("/v1/").removesuffix("/customJobs")
            self._reply({**body, "name": f"{parent}/customJobs/123", "state": "JOB_STATE_QUEUED"})

        def _list(self, body: dict[str, Any]) -> None:
            fake.log_requests.append(body)
            unknown = set(body) - LIST_FIELDS
            if unknown or not 0 < int(body.get("pageSize", 50)) <= 1000:
                self._reply(_error(400, f"bad entries.list request: {sorted(unknown)}"), 400)
                return
            if fake.ended() and "pageToken" not in body:
                fake.requests_after_end += 1
            since = _SINCE.search(body.get("filter", ""))
            entries = fake.entries()
            if since:
                op, stamp = since.groups()
                entries = [e for e in entries if e["timestamp"] > stamp or (
                    op == ">=" and e["timestamp"] == stamp
                )]  # fmt: skip
            start = int(body.get("pageToken", "0"))
            size = min(fake.page_size, int(body.get("pageSize", 50)))
            reply: dict[str, Any] = {"entries": entries[start : start + size]}
            if start + size < len(entries):
                reply["nextPageToken"] = str(start + size)
            self._reply(reply)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            path = self.path.split("?")[0]
            if path.endswith("/customJobs"):
                if not self._refused("create"):
                    self._create(path, body)
            elif path == "/v2/entries:list":
                if not self._refused("logs"):
                    self._list(body)
            else:
                self._reply(_error(404, self.path), 404)

        def do_GET(self) -> None:
            name = self.path.removeprefix("/v1/").split("?")[0]
            if "/customJobs/" not in name:
                self._reply(_error(404, self.path), 404)
            elif not self._refused("get"):
                if not fake.created or not name.endswith("/customJobs/123"):
                    self._reply(_error(404, f"CustomJob {name} not found"), 404)
                    return
                job = self._job(name)
                fake.gets += 1
                self._reply(job)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
