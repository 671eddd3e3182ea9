"""`trackday dr gui` for real on this machine's swarm, reached as a cloud manager is: through
a real SSH server on 127.0.0.1 with the docker client `trackday` makes over SSH.

Two simulation workers are the production service spec of a run with `cameras.gui` on, in
the locally made Python image standing in for the simulator (it cannot be pulled here), each
serving a VNC server's handshake on its VNC port (RFB 3.8, RFC 6143 section 7: version,
security type None, ServerInit whose desktop name says the worker's slot). The command's
relay must reach the worker asked for, on this machine's loopback only, through the SSH
forwarding; neither the worker's port nor the relay's may answer on another address.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import subprocess
import threading
import time

import docker
import pytest

from tests.rfb import rfb_handshake
from tests.servers import HOST, free_port
from tests.sshd import serve_sshd
from trackday.dr_gui import worker_address
from trackday.dr_network import ensure_network
from trackday.dr_viewer import gui_name, gui_session
from trackday.errors import RunError
from trackday.manager_ssh import connect
from trackday.swarm_jobs import create_service_args
from training.deepracer.params import Bucket
from training.deepracer.services import NETWORK, VNC_PORT, Site, training_services
from training.deepracer.settings import DeepRacerSettings

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]
RUN_ID = 86
# A VNC server's side of the RFB 3.8 handshake, up to ServerInit (RFC 6143 7.1-7.3).
RFB_SERVER = f"""
import os, socket, struct
name = ("worker " + os.environ["DOCKER_REPLICA_SLOT"]).encode()
listener = socket.create_server(("0.0.0.0", {VNC_PORT}))
while True:
    client, _ = listener.accept()
    with client:
        client.sendall(b"RFB 003.008\\n")
        client.recv(12)
        client.sendall(bytes([1, 1]))
        client.recv(1)
        client.sendall(struct.pack(">I", 0))
        client.recv(1)
        init = struct.pack(">HH", 1400, 900) + bytes(16) + struct.pack(">I", len(name))
        client.sendall(init + name)
"""


def _other_address() -> str:
    """This machine's first IPv4 address that is not loopback."""
    listed = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True)
    for line in listed.stdout.splitlines():
        address = line.split()[3].split("/")[0]
        if not address.startswith("127."):
            return address
    pytest.skip("this machine has no IPv4 address besides loopback")


def _refused(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=5):
            return False
    except OSError:
        return True


def test_the_gui_reaches_the_worker_asked_for_on_loopback_only(swarm, base_image, tmp_path):
    network_existed = bool(swarm.api.networks(names=[NETWORK]))
    ensure_network(swarm)
    settings = DeepRacerSettings(run_id=RUN_ID, workers=2, cameras={"gui": True})
    production = training_services(settings, Site(Bucket("runs", "eu-west-1"), single_node=True))
    worker = production[1]
    assert worker.env["ENABLE_GUI"] == "True"
    spec = dataclasses.replace(
        worker, image=base_image, args=("python3", "-c", RFB_SERVER), constraints=(), init=False
    )
    created = swarm.api.create_service(**create_service_args(spec, {}))
    stop = threading.Event()
    try:
        assert not swarm.api.inspect_service(created["ID"])["Endpoint"].get("Ports")
        with serve_sshd(tmp_path) as sshd:
            client = connect(HOST, "root", sshd.private_key, port=sshd.port, host_key=sshd.host_key)
            service = client.api.inspect_service(created["ID"])
            deadline = time.monotonic() + 180
            while True:  # until worker 2 runs on the runs' network
                try:
                    worker_address(client, service, 2)
                    break
                except RunError as error:
                    assert time.monotonic() < deadline, str(error)
                    time.sleep(1)
            local_port = free_port()
            session = threading.Thread(
                target=gui_session,
                args=(client, HOST, RUN_ID, "training", 2, local_port, stop),
            )
            session.start()
            deadline = time.monotonic() + 120
            while True:  # the relay's python starting, the worker's server listening
                try:
                    greeting, name = rfb_handshake(local_port)
                    if name:
                        break
                except (OSError, AssertionError, IndexError):
                    pass
                assert session.is_alive() and time.monotonic() < deadline
                time.sleep(1)
            assert (greeting, name) == (b"RFB 003.008\n", b"worker 2")
            container = swarm.containers.get(gui_name(RUN_ID, 2))
            bound = container.attrs["HostConfig"]["PortBindings"][f"{VNC_PORT}/tcp"]
            assert [b["HostIp"] for b in bound] == ["127.0.0.1"]
            published = container.attrs["NetworkSettings"]["Ports"][f"{VNC_PORT}/tcp"]
            node_port = int(published[0]["HostPort"])
            other = _other_address()
            assert _refused(other, node_port) and _refused(other, VNC_PORT)
            stop.set()
            session.join(timeout=60)
            with pytest.raises(docker.errors.NotFound):
                swarm.containers.get(gui_name(RUN_ID, 2))
            client.close()
    finally:
        stop.set()
        with contextlib.suppress(docker.errors.NotFound):
            swarm.containers.get(gui_name(RUN_ID, 2)).remove(force=True)
        swarm.api.remove_service(created["ID"])
        deadline = time.monotonic() + 60
        while swarm.containers.list(
            all=True, filters={"label": f"com.docker.swarm.service.id={created['ID']}"}
        ):
            assert time.monotonic() < deadline
            time.sleep(0.5)
        if not network_existed:
            with contextlib.suppress(docker.errors.APIError):
                swarm.api.remove_network(NETWORK)
