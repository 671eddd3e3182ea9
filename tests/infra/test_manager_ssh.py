"""The manager's SSH host key is pinned, never accepted blindly (issue 13 item 8): against a
real SSH server (paramiko's) on 127.0.0.1."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from trackday import manager_ssh
from trackday.errors import ManagerError


def _openssh_key() -> str:
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        .decode()
    )


def _public_line(private: str) -> str:
    key = paramiko.Ed25519Key.from_private_key(io.StringIO(private))
    return f"{key.get_name()} {key.get_base64()} host"


@contextmanager
def ssh_server(host_key: str) -> Iterator[int]:
    """An SSH server that presents `host_key` and lets nobody in."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    key = paramiko.Ed25519Key.from_private_key(io.StringIO(host_key))
    transports: list[paramiko.Transport] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            transport = paramiko.Transport(conn)
            transport.add_server_key(key)
            transports.append(transport)
            try:
                transport.start_server(server=paramiko.ServerInterface())
            except (paramiko.SSHException, EOFError, OSError):
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() waiting in the thread
        listener.close()
        for transport in transports:
            transport.close()
        thread.join(timeout=10)


@pytest.mark.parametrize("recorded", [None, "", "  "])
def test_no_recorded_host_key_means_no_connection(recorded):
    with pytest.raises(ManagerError, match=r"records no SSH host key .* run `pulumi up`"):
        manager_ssh.connect("127.0.0.1", "trackday", _openssh_key(), port=1, host_key=recorded)


def test_another_host_key_is_refused_even_if_known_hosts_has_it(tmp_path, monkeypatch):
    real = _openssh_key()
    pinned = _public_line(_openssh_key())
    with ssh_server(real) as port:
        # The operator's known_hosts knows the impostor's key for this address: still refused.
        (tmp_path / ".ssh").mkdir()
        (tmp_path / ".ssh" / "known_hosts").write_text(
            f"[127.0.0.1]:{port} {_public_line(real).rsplit(' ', 1)[0]}\n"
        )
        monkeypatch.setenv("HOME", str(tmp_path))
        with pytest.raises(ManagerError, match=r"Host key for server .* does not match"):
            manager_ssh.connect(
                "127.0.0.1", "trackday", _openssh_key(), port=port, host_key=pinned, timeout=20
            )


def test_the_recorded_host_key_is_accepted_and_only_auth_is_left(tmp_path, monkeypatch):
    real = _openssh_key()
    monkeypatch.setenv("HOME", str(tmp_path))
    with ssh_server(real) as port, pytest.raises(ManagerError) as err:
        manager_ssh.connect(
            "127.0.0.1",
            "trackday",
            _openssh_key(),
            port=port,
            host_key=_public_line(real),
            timeout=20,
        )
    # The server let the host key through and refused the login: past host verification.
    assert "uthentication" in str(err.value), str(err.value)
