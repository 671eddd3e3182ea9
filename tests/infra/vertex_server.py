"""A loopback stand-in for the two Google APIs `trackday donkey submit` calls.

Vertex AI (create and get a custom job, REST) and Cloud Logging (entries:list) have no
emulator; this server answers their REST calls on 127.0.0.1 the way the services do, so
the real google-cloud-aiplatform client and the real HTTP calls are exercised. Each job
goes queued -> running -> the scripted final state, one step per `get`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class VertexFake:
    endpoint: str = ""
    final_state: str = "JOB_STATE_SUCCEEDED"
    error: str = ""
    created: list[dict[str, Any]] = field(default_factory=list)
    log_requests: list[dict[str, Any]] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=lambda: ["epoch 1/2", "epoch 2/2", "uploaded"])
    gets: int = 0


def _states(fake: VertexFake) -> list[str]:
    return ["JOB_STATE_QUEUED", "JOB_STATE_RUNNING", fake.final_state]


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

        def _job(self, name: str) -> dict[str, Any]:
            job = dict(fake.created[-1])
            step = min(fake.gets, 2)
            job.update(name=name, state=_states(fake)[step])
            if step == 2 and fake.error:
                job["error"] = {"code": 9, "message": fake.error}
            return job

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            path = self.path.split("?")[0]
            if path.endswith("/customJobs"):
                fake.created.append(body)
                parent = path.removeprefix("/v1/").removesuffix("/customJobs")
                self._reply(
                    {**body, "name": f"{parent}/customJobs/123", "state": "JOB_STATE_QUEUED"}
                )
            elif path == "/v2/entries:list":
                fake.log_requests.append(body)
                done = len(fake.log_requests) > 1
                entries = [
                    {"timestamp": f"2026-01-01T00:00:0{i}Z", "textPayload": line + "\n"}
                    for i, line in enumerate(fake.log_lines)
                ]
                self._reply({"entries": entries if not done else []})
            else:
                self._reply({"error": {"code": 404, "message": self.path}}, 404)

        def do_GET(self) -> None:
            if "/customJobs/" in self.path:
                name = self.path.removeprefix("/v1/").split("?")[0]
                job = self._job(name)
                fake.gets += 1
                self._reply(job)
            else:
                self._reply({"error": {"code": 404, "message": self.path}}, 404)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
