"""A live run's camera streams, from the viewer `trackday dr viewer` serves on 127.0.0.1.

The dashboard starts nothing (the viewer is a container on the manager, and a tunnel to it),
so it asks the viewer on this machine's loopback which run it shows (`/workers.json`,
trackday/viewer_proxy.py) and, when that is the page's model prefix, the page shows each
worker's MJPEG stream straight from the viewer (`/w/<worker>/stream?topic=...`: the
web_video_server URL DRfC's viewer uses, passed through to the worker). A page of another run,
or no viewer, says how to start one.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import quote

HOST = "127.0.0.1"
DEFAULT_PORT = 8100  # `trackday dr viewer`'s default --port
TIMEOUT_S = 2.0


@dataclass(frozen=True)
class LiveView:
    port: int
    streams: list[str]  # one URL per worker, on the viewer


def live_view(port: int, prefix: str, timeout_s: float = TIMEOUT_S) -> LiveView | None:
    """The viewer's streams when it shows `prefix`'s workers, else None."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/workers.json", timeout=timeout_s) as r:
            found = json.loads(r.read())
    except (OSError, urllib.error.URLError, ValueError):
        return None
    if not isinstance(found, dict) or found.get("model_prefix") != prefix:
        return None
    stream = str(found.get("stream", ""))
    workers = [str(w) for w in found.get("workers") or [] if isinstance(w, str)]
    return LiveView(
        port, [f"http://{HOST}:{port}/w/{quote(w, safe='.:')}/{stream}" for w in workers]
    )
