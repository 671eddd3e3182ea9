"""A real OpenSSH server on 127.0.0.1 for the tests that reach a machine over SSH (a swarm
manager, a car): it lets in one generated ed25519 key and answers with a generated host key."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import HOST, free_port

SSHD = Path("/usr/sbin/sshd")
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class SshServer:
    port: int
    work: Path  # `client` (the key it lets in), `host.pub`, `sshd.log`

    @property
    def private_key(self) -> str:
        return (self.work / "client").read_text()

    @property
    def host_key(self) -> str:
        return (self.work / "host.pub").read_text()


@contextmanager
def serve_sshd(work: Path) -> Iterator[SshServer]:
    """sshd on HOST:<free port>, from the moment it answers with its banner until the block ends."""
    if not SSHD.exists():
        pytest.fail("openssh-server is missing: run scripts/setup test")
    for name in ("host", "client"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / name)], check=True
        )
    (work / "authorized_keys").write_text((work / "client.pub").read_text())
    port = free_port()
    (work / "sshd_config").write_text(
        f"ListenAddress {HOST}\nPort {port}\nHostKey {work / 'host'}\n"
        f"AuthorizedKeysFile {work / 'authorized_keys'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        f"StrictModes no\nUsePAM no\nPidFile {work / 'sshd.pid'}\n"
        "Subsystem sftp internal-sftp\n"  # as every distribution's sshd_config has (scp uses it)
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation folder
    log = open(work / "sshd.log", "wb")  # noqa: SIM115  (open while the server runs)
    process = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(work / "sshd_config")], stdout=log, stderr=log
    )
    try:
        _wait_for_banner(port, process, work / "sshd.log")
        yield SshServer(port, work)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _wait_for_banner(port: int, process: subprocess.Popen, log: Path) -> None:
    """Until sshd accepts a connection and says `SSH-`, or exits, or the deadline passes."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sshd exited: {log.read_text()}")
        try:
            with socket.create_connection((HOST, port), timeout=5) as connection:
                if connection.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"sshd did not answer on {HOST}:{port} within {START_TIMEOUT_S:.0f} s")
