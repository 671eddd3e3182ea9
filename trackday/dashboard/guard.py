"""What keeps the dashboard local and read-only, whatever a route does.

The server binds 127.0.0.1 only; this middleware also refuses a peer that is not loopback
(a proxy or a changed bind address would otherwise expose the operator's buckets) and every
method but GET and HEAD, so nothing it serves can change anything. Starlette's
TrustedHostMiddleware, wrapped around it in app.py, refuses a Host header that is not this
machine: a web page from elsewhere that rebinds its DNS name to 127.0.0.1 is turned away.
"""

from __future__ import annotations

import ipaddress

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

ALLOWED_METHODS = ("GET", "HEAD")
LOCAL_HOSTS = ["127.0.0.1", "localhost"]


def is_loopback(client: tuple[str, int] | None) -> bool:
    if client is None:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


class LocalReadOnly:
    """Refuse non-loopback peers (403) and any method but GET/HEAD (405)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # websockets: nothing here uses them
            await send({"type": "websocket.close", "code": 1008})
            return
        if not is_loopback(scope.get("client")):
            response = PlainTextResponse(
                "trackday dashboard answers this machine only (127.0.0.1)", status_code=403
            )
        elif scope["method"] not in ALLOWED_METHODS:
            response = PlainTextResponse(
                "the dashboard is read-only: GET and HEAD only",
                status_code=405,
                headers={"Allow": ", ".join(ALLOWED_METHODS)},
            )
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)
