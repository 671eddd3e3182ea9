"""trackday's SSH transport to a manager's engine keeps to sshd's limit of sessions.

docker's SSH transport runs `docker system dial-stdio` in one SSH session per connection, and
kept a connection pool per request URL: after ten different requests OpenSSH's MaxSessions
(10, its default and Ubuntu's) refused the next ("no more sessions"), which failed
`trackday dr stop-training` on the booted nodes (tests/nodes/test_dr_nodes.py). A real sshd on
loopback with its default limit, in front of this machine's engine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.servers import HOST
from tests.sshd import serve_sshd
from trackday import manager_ssh

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]


def test_many_different_requests_fit_in_sshds_session_limit(
    docker_engine: str, tmp_path: Path
) -> None:
    with serve_sshd(tmp_path) as server:
        client = manager_ssh.connect(
            HOST, "root", server.private_key, port=server.port, host_key=server.host_key
        )
        try:
            for probe in range(15):  # each a different URL
                client.api.containers(filters={"label": f"trackday.test.probe={probe}"})
        finally:
            client.close()
