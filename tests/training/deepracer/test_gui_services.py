"""The GUI (`cameras.gui`, DRfC's DR_GUI_ENABLE) in the workers' services: simapp's run.sh
starts a VNC server only beside its own Xvfb, so on the nodes' X server the worker's
command starts x11vnc first; the command really serves VNC on that display (Debian's
x11vnc on a real Xorg started from the rendered unit, dummy driver)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.infra.test_xorg import dummy_server
from tests.rfb import rfb_handshake
from tests.servers import free_port
from tests.training.deepracer.test_opengl_services import BUCKET, CLOUD, workers
from training.deepracer.services import VNC_PORT, Site, evaluation_services
from training.deepracer.settings import DeepRacerSettings

RUN = "/opt/ml/code/run.sh"
LOCAL_X = Site(BUCKET, single_node=True, display=":0", xauthority="/home/u/.Xauthority")


def test_workers_on_the_nodes_x_server_start_x11vnc_before_run_sh():
    args = workers(CLOUD, workers=2, cameras={"gui": True}).args
    vnc, run = args[0].split(" & ")
    assert vnc.startswith("x11vnc ") and f"-rfbport {VNC_PORT}" in vnc
    assert run == f"{RUN} multi distributed_training.launch.py"
    evaluation = evaluation_services(DeepRacerSettings(cameras={"gui": True}), CLOUD)[0]
    assert evaluation.args[0] == f"{vnc} & {RUN} run evaluation.launch.py"


@pytest.mark.parametrize(
    ("site", "values"),
    [
        (CLOUD, {}),  # the GUI off
        (CLOUD, {"cameras": {"gui": True}, "opengl": False}),  # run.sh's own Xvfb and x11vnc
        (LOCAL_X, {"cameras": {"gui": True}, "opengl": True}),  # the user's own desktop
    ],
)
def test_no_vnc_server_of_trackday_elsewhere(site, values):
    simulation = workers(site, **values)
    assert simulation.args == (f"{RUN} run distributed_training.launch.py",)
    assert simulation.env["ENABLE_GUI"] == str(values.get("cameras", {}).get("gui", False))


def test_the_workers_vnc_command_serves_the_display(tmp_path: Path):
    if not shutil.which("x11vnc"):
        pytest.skip("no x11vnc here: apt-get install x11vnc")
    port = free_port()
    command = workers(CLOUD, cameras={"gui": True}).args[0]
    # its port moved, and on loopback only here (in the container: the runs' network)
    command = command.replace(f"-rfbport {VNC_PORT}", f"-rfbport {port} -localhost")
    command = command.replace(f"{RUN} run distributed_training.launch.py", "echo run.sh")
    log = tmp_path / "command.log"
    with dummy_server(tmp_path) as (display, _):
        try:
            with log.open("w") as output:  # a file: x11vnc in the background keeps it open
                started = subprocess.run(
                    ["bash", "-c", command],
                    env={"DISPLAY": display, "PATH": "/usr/bin:/bin"},
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    timeout=120,
                )
            assert started.returncode == 0 and log.read_text().endswith("run.sh\n"), log.read_text()
            deadline = time.monotonic() + 60
            while True:
                try:
                    greeting, _ = rfb_handshake(port)
                    break
                except (OSError, AssertionError, IndexError):
                    assert time.monotonic() < deadline, log.read_text()
                    time.sleep(0.5)
            assert greeting == b"RFB 003.008\n"
        finally:
            _stop_x11vnc(port)


def _stop_x11vnc(port: int) -> None:
    """The x11vnc this test started (in the background, with its own port), by its id."""
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0] == b"x11vnc" and str(port).encode() in argv:
            os.kill(int(proc.name), signal.SIGTERM)
