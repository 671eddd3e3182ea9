"""The dashboard's home page reads a stack's nodes and power-off timers from its swarm manager
over SSH: here a real sshd on 127.0.0.1 in front of this machine's engine, a one-node swarm
manager (the e2e tests' swarm), checked against what the engine itself says."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.dashboard.asgi import asgi_request
from tests.sshd import SshServer, serve_sshd
from trackday.dashboard import nodes
from trackday.dashboard.app import Settings, create_app
from trackday.dashboard.costs import Price
from trackday.dashboard.stacks import Stack
from trackday.errors import ManagerError

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]
IDLE_FOR_S = 600


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    with serve_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def _outputs(ssh: SshServer, host_key: str | None = None) -> dict:
    return {
        "target": "aws",
        "bucketUrl": "s3://unused",
        "managerAddress": "127.0.0.1",
        "sshPort": ssh.port,
        "sshUser": "root",
        "sshPrivateKey": ssh.private_key,
        "managerHostKey": host_key or ssh.host_key,
    }


def _idle_file(tmp_path: Path) -> Path:
    """The idle check's file as infra/bootstrap/'s script writes it: the epoch second the
    node went idle (here in a test folder: this machine's /run is not a node's)."""
    path = tmp_path / "idle-since"
    path.write_text(f"{int(time.time()) - IDLE_FOR_S}\n")
    return path


def _uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def test_nodes_and_timers_as_the_manager_reports_them(swarm, sshd, tmp_path):
    before = _uptime()
    view = nodes.read_manager(_outputs(sshd), idle_file=str(_idle_file(tmp_path)))
    engine = swarm.api.nodes()
    assert [n.hostname for n in view.nodes] == [n["Description"]["Hostname"] for n in engine]
    assert [(n.role, n.state, n.availability) for n in view.nodes] == [
        (n["Spec"]["Role"], n["Status"]["State"], n["Spec"]["Availability"]) for n in engine
    ]
    assert view.nodes[0].labels.get("trackday.role") == "trainer"  # the e2e swarm's label
    assert view.nodes[0].gpus == 0  # this machine advertises none
    assert before <= view.uptime_s <= _uptime()
    assert IDLE_FOR_S <= view.idle_s <= IDLE_FOR_S + 120
    left = nodes.power_off_left(view, ttl_hours=1000, idle_minutes=30)
    assert left["ttl"] == pytest.approx(1000 * 3600 - view.uptime_s)
    assert left["idle"] == pytest.approx(30 * 60 - view.idle_s)
    busy = nodes.read_manager(_outputs(sshd), idle_file=str(tmp_path / "no-such-file"))
    assert busy.idle_s is None
    assert nodes.power_off_left(busy, None, 30) == {"ttl": None, "idle": None}


def test_another_host_key_is_refused(sshd, tmp_path):
    other = (tmp_path / "other").resolve()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    with pytest.raises(ManagerError, match=r"cannot reach the manager root@127\.0\.0\.1"):
        nodes.read_manager(_outputs(sshd, (tmp_path / "other.pub").read_text()))


def test_the_home_page_shows_the_nodes(swarm, sshd):
    stack = Stack("cloud", "aws", None, _outputs(sshd), price=Price(2.0, "$2.00/h", 1000, 30))
    status, page = asgi_request(create_app(Settings([stack])), "127.0.0.1")
    assert status == 200
    hostname = swarm.api.nodes()[0]["Description"]["Hostname"]
    assert f"<td>{hostname}</td>" in page and "TTL power-off in" in page
    assert "manager-error-cloud" not in page
