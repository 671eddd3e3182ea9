"""A worker's web_video_server stand-in, and the real viewer proxy (trackday/viewer_proxy.py,
as `trackday dr viewer` runs it) in front of it. The stand-in answers the documented URL
(`/stream?topic=<topic>&quality=&width=&height=`) with an MJPEG stream
(multipart/x-mixed-replace of JPEG frames of the asked size) until the client goes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

from PIL import Image

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


@contextmanager
def serve_viewer(port: int, model_prefix: str) -> Iterator[int]:
    """The viewer of `model_prefix`'s run (one worker) on `port`; yields the worker's port."""
    worker = ThreadingHTTPServer(("127.0.0.1", 0), WebVideoServer)
    threading.Thread(target=worker.serve_forever, daemon=True).start()
    env = {
        **os.environ,
        "VIEWER_UPSTREAM": "localhost",
        "VIEWER_UPSTREAM_PORT": str(worker.server_address[1]),
        "VIEWER_PORT": str(port),
        "VIEWER_BIND": "127.0.0.1",
        "VIEWER_MODEL_PREFIX": model_prefix,
    }
    proxy = subprocess.Popen([sys.executable, "-c", PROXY.read_text()], env=env)
    WebVideoServer.stop.clear()
    try:
        _wait_answering(f"http://127.0.0.1:{port}/workers.json")
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
