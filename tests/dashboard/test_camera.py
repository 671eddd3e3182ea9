"""A live run's camera streams on its page: the real viewer proxy (trackday/viewer_proxy.py, as
`trackday dr viewer` runs it) in front of a stand-in for a worker's web_video_server, which
answers the documented URL (`/stream?topic=<topic>&quality=&width=&height=`) with an MJPEG
stream (multipart/x-mixed-replace of JPEG frames of the asked size), until the client goes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from tests.dashboard.conftest import DR_PREFIX, SAMPLE_PREFIX
from trackday.dr_viewer import PROXY

WAIT_MS = 60_000
BOUNDARY = "boundarydonotcross"  # web_video_server's multipart boundary


class WebVideoServer(BaseHTTPRequestHandler):
    asked: ClassVar[list[str]] = []
    stop = threading.Event()

    def log_message(self, *args) -> None:
        return

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path != "/stream" or "topic" not in query:
            self.send_error(404, "web_video_server serves /stream?topic=...")
            return
        WebVideoServer.asked.append(self.path)
        size = (int(query.get("width", ["640"])[0]), int(query.get("height", ["480"])[0]))
        frame = io.BytesIO()
        Image.new("RGB", size, (200, 30, 30)).save(frame, "JPEG")
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace;boundary={BOUNDARY}")
        self.end_headers()
        part = (
            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
            f"Content-Length: {len(frame.getvalue())}\r\n\r\n"
        ).encode()
        try:
            while not self.stop.is_set():  # a camera: frames until the viewer hangs up
                self.wfile.write(part + frame.getvalue() + b"\r\n")
                self.wfile.flush()
                self.stop.wait(0.1)  # the stream's frame rate, not a wait for anything
        except OSError:
            return


@pytest.fixture
def viewer(dashboard) -> Iterator[int]:
    """The viewer of DR_PREFIX's run on the port the dashboard looks at."""
    worker = ThreadingHTTPServer(("127.0.0.1", 0), WebVideoServer)
    threading.Thread(target=worker.serve_forever, daemon=True).start()
    env = {
        **os.environ,
        "VIEWER_UPSTREAM": "localhost",
        "VIEWER_UPSTREAM_PORT": str(worker.server_address[1]),
        "VIEWER_PORT": str(dashboard.viewer_port),
        "VIEWER_BIND": "127.0.0.1",
        "VIEWER_MODEL_PREFIX": DR_PREFIX,
    }
    proxy = subprocess.Popen([sys.executable, "-c", PROXY.read_text()], env=env)
    WebVideoServer.stop.clear()
    try:
        _wait_answering(f"http://127.0.0.1:{dashboard.viewer_port}/workers.json")
        yield worker.server_address[1]
    finally:
        WebVideoServer.stop.set()
        proxy.terminate()
        proxy.wait(timeout=30)
        worker.shutdown()


def _wait_answering(url: str) -> None:
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            assert time.monotonic() < deadline, f"{url} does not answer"
            time.sleep(0.1)


def test_a_live_runs_cameras_play_on_its_page(dashboard, viewer, laptop):
    page = laptop.page
    page.goto(f"{dashboard.url}/s/good/dr/{DR_PREFIX}")
    assert page.locator("#live-camera img").count() == 1  # the one worker the viewer lists
    page.wait_for_function(
        "(() => { const i = document.querySelector('#live-camera img'); "
        "return i.complete && i.naturalWidth == 480 && i.naturalHeight == 360; })()",
        timeout=WAIT_MS,
    )
    # the viewer's default stream, as DRfC's viewer asks web_video_server for it
    assert WebVideoServer.asked[-1] == (
        "/stream?topic=/racecar/deepracer/kvs_stream&quality=75&width=480&height=360"
    )
    laptop.screenshot("dr-live-camera-laptop")
    page.goto(f"{dashboard.url}/s/good/dr/{SAMPLE_PREFIX}")  # another run: not its cameras
    assert page.locator("#live-camera").count() == 0
    assert "trackday dr viewer --stack good" in page.locator("#no-live-camera").inner_text()
    assert laptop.errors == []


def test_without_a_viewer_the_page_says_how_to_start_one(dashboard, laptop):
    laptop.page.goto(f"{dashboard.url}/s/good/dr/{DR_PREFIX}")
    assert laptop.page.locator("#no-live-camera").count() == 1
    assert laptop.errors == []
