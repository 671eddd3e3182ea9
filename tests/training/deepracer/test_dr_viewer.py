"""`trackday dr viewer`: the proxy the viewer container runs, and the loopback forwarder."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from tests.servers import free_port
from trackday.dr_viewer import PROXY, forward

FRAME = b"--frame\r\nContent-Type: image/jpeg\r\n\r\nJPEGDATA\r\n"


class VideoServer(BaseHTTPRequestHandler):
    """A worker's web_video_server: an MJPEG stream of a topic at /stream?topic=..."""

    asked: ClassVar[list[str]] = []

    def log_message(self, *args) -> None:
        return

    def do_GET(self) -> None:
        VideoServer.asked.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace;boundary=frame")
        self.end_headers()
        for _ in range(3):
            self.wfile.write(FRAME)
            self.wfile.flush()


@pytest.fixture
def worker():
    server = ThreadingHTTPServer(("127.0.0.1", 0), VideoServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    thread.join()


def wait_listening(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {port}"
            time.sleep(0.1)


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def test_the_proxy_shows_and_relays_only_the_workers(worker):
    port = free_port()
    env = {
        **os.environ,
        "VIEWER_UPSTREAM": "localhost",
        "VIEWER_UPSTREAM_PORT": str(worker),
        "VIEWER_PORT": str(port),
        "VIEWER_BIND": "127.0.0.1",
        "VIEWER_WIDTH": "640",
        "VIEWER_MODEL_PREFIX": "speedy-1",
    }
    proxy = subprocess.Popen([sys.executable, "-c", PROXY.read_text()], env=env)
    try:
        wait_listening(port)
        status, page = get(f"http://127.0.0.1:{port}/")
        assert status == 200
        assert (
            b'<img src="/w/127.0.0.1/stream?topic=/racecar/deepracer/kvs_stream&amp;'
            b'quality=75&amp;width=640&amp;height=360">'
        ) in page
        status, stream = get(f"http://127.0.0.1:{port}/w/127.0.0.1/stream?topic=/cam")
        assert status == 200 and stream == FRAME * 3
        assert VideoServer.asked[-1] == "/stream?topic=/cam"
        assert get(f"http://127.0.0.1:{port}/w/192.0.2.7/stream?topic=/cam")[0] == 404
        assert get(f"http://127.0.0.1:{port}/elsewhere")[0] == 404
        status, listing = get(f"http://127.0.0.1:{port}/workers.json")
        assert status == 200 and json.loads(listing) == {
            "service": "localhost",
            "model_prefix": "speedy-1",
            "workers": ["127.0.0.1"],
            "stream": "stream?topic=/racecar/deepracer/kvs_stream&quality=75&width=640&height=360",
        }
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)


def test_the_forwarder_carries_connections_to_the_channel(worker):
    """Each connection to the local port goes through a channel of its own (over SSH in
    use; a plain connection to the worker here)."""
    stop = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        thread = threading.Thread(
            target=forward,
            args=(listener, lambda: socket.create_connection(("127.0.0.1", worker)), stop),
        )
        thread.start()
        try:
            for _ in range(2):
                assert get(f"http://127.0.0.1:{port}/stream?topic=/x") == (200, FRAME * 3)
        finally:
            stop.set()
            thread.join(timeout=30)
    assert not thread.is_alive()
