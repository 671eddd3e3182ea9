"""The viewer's proxy, run by `trackday dr viewer` inside a container on the runs' network
(`python3 -c` of this file, in the simulator image: standard library only, Python 3.8+).

Like DRfC's viewer (scripts/viewer/: nginx proxying each simulation worker's
web_video_server on port 8080), it serves one page with every worker's camera stream and
passes `/w/<worker address>/...` to that worker. Workers are found through Swarm's DNS name
`tasks.<service>`; only their addresses are proxied, so it is no open proxy. `/workers.json`
says the same for `trackday dashboard`, which shows the streams on the run's own page.
"""

import html
import http.client
import json
import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UPSTREAM = os.environ.get("VIEWER_UPSTREAM", "")
UPSTREAM_PORT = int(os.environ.get("VIEWER_UPSTREAM_PORT", "8080"))
LISTEN_PORT = int(os.environ.get("VIEWER_PORT", "8100"))
BIND = os.environ.get("VIEWER_BIND", "0.0.0.0")  # the container's own interfaces
MODEL_PREFIX = os.environ.get("VIEWER_MODEL_PREFIX", "")  # the run's, for the dashboard
STREAM = "stream?topic={topic}&quality={quality}&width={width}&height={height}".format(
    topic=os.environ.get("VIEWER_TOPIC", "/racecar/deepracer/kvs_stream"),
    quality=os.environ.get("VIEWER_QUALITY", "75"),
    width=os.environ.get("VIEWER_WIDTH", "480"),
    height=os.environ.get("VIEWER_HEIGHT", "360"),
)


def workers():
    try:
        found = socket.getaddrinfo(UPSTREAM, UPSTREAM_PORT, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror:
        return []
    return sorted({entry[4][0] for entry in found})


class Viewer(BaseHTTPRequestHandler):
    def log_message(self, *args):
        return

    def do_GET(self):
        if self.path == "/":
            return self.page()
        if self.path == "/workers.json":
            return self.listing()
        parts = self.path.split("/", 3)
        if len(parts) == 4 and parts[1] == "w" and parts[2] in workers():
            return self.relay(parts[2], "/" + parts[3])
        self.send_error(404, "no such worker")

    def listing(self):
        found = {"service": UPSTREAM, "model_prefix": MODEL_PREFIX, "workers": workers()}
        self.answer("application/json", json.dumps(dict(found, stream=STREAM)).encode())

    def answer(self, kind, body):
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def page(self):
        found = workers()
        stream = html.escape(STREAM)
        images = "".join(
            f'<figure><img src="/w/{address}/{stream}"><figcaption>{address}</figcaption></figure>'
            for address in found
        )
        title = f"{len(found)} workers of {html.escape(UPSTREAM)}"
        body = (f"<!doctype html><title>DeepRacer workers</title><h1>{title}</h1>{images}").encode()
        self.answer("text/html; charset=utf-8", body)

    def relay(self, address, path):
        upstream = http.client.HTTPConnection(address, UPSTREAM_PORT, timeout=30)
        try:
            upstream.request("GET", path)
            answer = upstream.getresponse()
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("connection", "transfer-encoding", "keep-alive"):
                    self.send_header(name, value)
            self.send_header("Connection", "close")
            self.end_headers()
            while True:
                chunk = answer.read1(65536)
                if not chunk:
                    break
                self.wfile.write(chunk)
                self.wfile.flush()
        except (OSError, http.client.HTTPException):
            self.close_connection = True
        finally:
            upstream.close()


if __name__ == "__main__":
    ThreadingHTTPServer((BIND, LISTEN_PORT), Viewer).serve_forever()
