"""The dashboard answers this machine only, and only GET and HEAD."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest

from tests.dashboard.asgi import asgi_request
from trackday.dashboard.app import Settings, create_app


def _status(url: str, method: str = "GET", headers: dict | None = None) -> int:
    request = urllib.request.Request(
        url, method=method, headers=headers or {}, data=b"x" if method in ("POST", "PUT") else None
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_refuses_every_method_but_get_and_head(dashboard, method):
    assert _status(dashboard.url + "/", method) == 405
    assert _status(dashboard.url + "/s/good/donkey", method) == 405
    assert _status(dashboard.url + "/", "HEAD") == 200


def test_refuses_a_host_name_from_elsewhere(dashboard):
    """A page whose DNS name was rebound to 127.0.0.1 sends its own Host: turned away."""
    assert _status(dashboard.url + "/", headers={"Host": "evil.example"}) == 400


def _own_address() -> str | None:
    """This machine's address on its default route, None without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_listens_on_loopback_only(dashboard):
    address = _own_address()
    if address is None:
        pytest.skip("this machine has no address but loopback")
    port = int(dashboard.url.rsplit(":", 1)[1])
    with pytest.raises(OSError), socket.create_connection((address, port), timeout=5):
        pass


def _asgi_status(app, peer: str, method: str = "GET", path: str = "/") -> int:
    return asgi_request(app, peer, method, path)[0]


@pytest.mark.parametrize("peer", ["192.0.2.7", "10.1.2.3", "::ffff:192.0.2.7", "testclient"])
def test_refuses_a_peer_that_is_not_loopback(peer):
    """Behind a proxy or a changed bind address, the app itself still turns others away."""
    app = create_app(Settings([]))
    assert _asgi_status(app, peer) == 403
    assert _asgi_status(app, "127.0.0.1") == 200
    assert _asgi_status(app, "::1") == 200
    assert _asgi_status(app, "127.0.0.1", "POST", "/no-such-page") == 405
