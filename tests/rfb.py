"""A VNC viewer's side of the RFB 3.8 handshake (RFC 6143 section 7.1-7.3), for the tests
that check a VNC server answers: its greeting, security type None, and its ServerInit."""

from __future__ import annotations

import socket
import struct

from tests.servers import HOST


def _read(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size and (chunk := connection.recv(size - len(data))):
        data += chunk
    return data


def rfb_handshake(port: int) -> tuple[bytes, bytes]:
    """A VNC viewer's side: the server's greeting and its desktop name."""
    with socket.create_connection((HOST, port), timeout=20) as connection:
        greeting = _read(connection, 12)
        connection.sendall(b"RFB 003.008\n")
        count = _read(connection, 1)[0]
        assert 1 in _read(connection, count)  # security type None offered
        connection.sendall(bytes([1]))
        assert _read(connection, 4) == struct.pack(">I", 0)
        connection.sendall(bytes([1]))  # ClientInit: shared
        _read(connection, 20)
        (length,) = struct.unpack(">I", _read(connection, 4))
        return greeting, _read(connection, length)
