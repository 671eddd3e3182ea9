"""`trackday dr viewer`'s proxy container, for real on this machine's swarm.

A simulation service stands in for the workers (the locally made Python base image serving
an MJPEG stream on port 8080, as web_video_server does); the viewer's container joins the
runs' network and must list the worker by Swarm's `tasks.<service>` name, relay its stream,
and be published on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import time
import urllib.error
import urllib.request

import docker
import pytest
from docker.types import RestartPolicy

from tests.servers import free_port
from trackday.dr_runs import ensure_network
from trackday.dr_viewer import start_proxy, viewer_name
from training.deepracer.services import NETWORK

pytestmark = pytest.mark.timeout(600)
RUN_ID = 87
WORKER = """
from http.server import BaseHTTPRequestHandler, HTTPServer
class Stream(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace;boundary=frame")
        self.end_headers()
        self.wfile.write(b"--frame\\r\\n" + self.path.encode() + b"\\r\\n")
HTTPServer(("0.0.0.0", 8080), Stream).serve_forever()
"""


def get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read()
    except (urllib.error.URLError, OSError):
        return b""


@pytest.mark.docker
def test_the_viewer_shows_the_workers_on_loopback_only(swarm, base_image):
    network_existed = bool(swarm.api.networks(names=[NETWORK]))
    ensure_network(swarm)
    name = f"trackday-e2e-viewer-{RUN_ID}-simulation"
    worker = swarm.services.create(
        base_image,
        ["python3", "-c", WORKER],
        name=name,
        networks=[NETWORK],
        restart_policy=RestartPolicy(condition="none"),
    )
    port = free_port()
    container = None
    try:
        container = start_proxy(
            swarm,
            swarm.api.inspect_service(worker.id),
            RUN_ID,
            port,
            {"topic": "/racecar/camera", "width": "320"},
        )
        bindings = swarm.api.inspect_container(container.id)["HostConfig"]["PortBindings"]
        assert [b["HostIp"] for b in bindings["8100/tcp"]] == ["127.0.0.1"]
        deadline = time.monotonic() + 120
        while b"1 workers of tasks." + name.encode() not in (
            page := get(f"http://127.0.0.1:{port}/")
        ):
            assert time.monotonic() < deadline, (page, container.logs()[-2000:])
            time.sleep(1)
        address = page.split(b'<img src="/w/')[1].split(b"/", 1)[0].decode()
        stream = get(
            f"http://127.0.0.1:{port}/w/{address}/stream?topic=/racecar/camera"
            "&quality=75&width=320&height=360"
        )
        assert (
            stream == b"--frame\r\n/stream?topic=/racecar/camera&quality=75&width=320"
            b"&height=360\r\n"
        )
        assert get(f"http://127.0.0.1:{port}/w/192.0.2.1/stream") == b""  # not a worker
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            swarm.containers.get(viewer_name(RUN_ID)).remove(force=True)
        worker.remove()
        deadline = time.monotonic() + 60
        while swarm.containers.list(
            all=True, filters={"label": f"com.docker.swarm.service.id={worker.id}"}
        ):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        if not network_existed:
            with contextlib.suppress(docker.errors.APIError):
                swarm.api.remove_network(NETWORK)
