"""The headless X server for GPU rendering (infra/xorg.py): its scripts pass shellcheck and
its unit `systemd-analyze verify`; the nvidia configuration is written from nvidia-smi's bus
id (stand-in nvidia-smi: no GPU here); with the test-only dummy driver, the same setup script
and the unit's own command start a real Xorg that `xdpyinfo` reaches."""

from __future__ import annotations

import configparser
import contextlib
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra import bootstrap, xorg
from infra.config import parse
from infra.nodes import PoolSpec
from tests.infra.stacks import shipped_values
from tests.infra.test_bootstrap import SSH_KEY, files, shellcheck
from tests.infra.test_stack_config import _trackday_keys

# Debian/Ubuntu packages the X server tests need (scripts/setup test installs them).
X_PACKAGES = "xserver-xorg-core xserver-xorg-video-dummy x11-utils"


def needs_xorg() -> None:
    if not (Path(xorg.XORG).exists() and shutil.which("xdpyinfo")):
        pytest.skip(f"no {xorg.XORG} or xdpyinfo here: apt-get install {X_PACKAGES}")


def stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(0o755)


def run_setup(driver: xorg.Driver, tmp_path: Path, stubs: Path | None = None) -> Path:
    """The rendered setup script, its configuration written under tmp_path instead of /etc."""
    conf = tmp_path / "xorg.conf"
    script = xorg.setup_script(driver).replace(xorg.CONFIG_FILE, str(conf))
    path = f"{stubs}:{os.environ['PATH']}" if stubs else os.environ["PATH"]
    result = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path},
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return conf


@pytest.mark.parametrize("driver", ["nvidia", "dummy"])
def test_scripts_pass_shellcheck_and_the_unit_verifies(driver, tmp_path: Path) -> None:
    shellcheck(xorg.setup_script(driver))
    (tmp_path / xorg.UNIT_NAME).write_text(xorg.unit(driver))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", xorg.UNIT_NAME],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    # Only the X server binary may be missing here (a machine without the X packages).
    problems = [
        line
        for line in result.stderr.splitlines()
        if f"Command {xorg.XORG} is not executable" not in line
    ]
    assert problems == [], result.stderr
    service = xorg.node_service(driver)
    assert service.unit_name == xorg.UNIT_NAME and set(service.files) == {xorg.SETUP_SCRIPT}


def test_nvidia_configuration_on_the_first_gpus_bus_id(tmp_path: Path) -> None:
    needs_xorg()  # the script installs nothing where the X server is there
    stubs = tmp_path / "bin"
    stubs.mkdir()
    # Azure puts GPUs in PCI domain 1; nvidia-smi prints hex domain:bus:device.function, a
    # line per GPU: more than a pipe holds, so a reader that stops at the first line breaks
    # the pipe (`| head -n 1` under pipefail failed the script).
    stub(
        stubs,
        "nvidia-smi",
        """case "$*" in
  *pci.bus_id*) echo 00000001:3B:00.0; for _ in $(seq 20000); do echo 00000002:3C:00.0; done ;;
  *driver_version*) echo 550.127.05 ;;
  *) exit 2 ;;
esac""",
    )
    stub(stubs, "apt-get", f'echo "$*" >> {tmp_path}/apt.log')
    conf = run_setup("nvidia", tmp_path, stubs).read_text()
    assert 'Driver "nvidia"' in conf and 'BusID "PCI:59@1:0:0"' in conf
    assert 'Section "DRI"\n    Mode 0666\nEndSection' in conf
    # No nvidia_drv.so on this machine: the driver's own X module package is installed.
    assert "xserver-xorg-video-nvidia-550" in (tmp_path / "apt.log").read_text()


def test_nvidia_without_a_bus_id_stops_with_the_way_out(tmp_path: Path) -> None:
    needs_xorg()
    stubs = tmp_path / "bin"
    stubs.mkdir()
    stub(stubs, "nvidia-smi", "exit 0")
    script = xorg.setup_script("nvidia").replace(xorg.CONFIG_FILE, str(tmp_path / "c"))
    result = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}"},
    )
    assert result.returncode == 1 and "trackday:deepracer.opengl false" in result.stderr


def test_configuration_refuses_what_it_cannot_render() -> None:
    with pytest.raises(ValueError, match="bus id"):
        xorg.xorg_conf("nvidia")
    with pytest.raises(ValueError, match="must be one of nvidia, dummy"):
        xorg.unit("vesa")  # type: ignore[arg-type]


def _free_display() -> int:
    for number in range(150, 250):
        if not (
            Path(f"/tmp/.X{number}-lock").exists() or Path(f"/tmp/.X11-unix/X{number}").exists()
        ):
            return number
    raise AssertionError("no free X display number from 150 to 249")


@contextlib.contextmanager
def dummy_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A real Xorg from the rendered setup script and the unit's own command line (display
    number and file paths moved under tmp_path); yields its display and xdpyinfo's output."""
    needs_xorg()
    conf = run_setup("dummy", tmp_path)
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.read_string(xorg.unit("dummy"))
    display = f":{_free_display()}"
    moved = {
        xorg.DISPLAY: display,
        xorg.CONFIG_FILE: str(conf),
        xorg.LOG_FILE: str(tmp_path / "xorg.log"),
    }
    command = [moved.get(arg, arg) for arg in shlex.split(unit["Service"]["ExecStart"])]
    assert command[0] == xorg.XORG and "-nolisten" in command
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            probe = subprocess.run(
                ["xdpyinfo", "-display", display], capture_output=True, text=True
            )
            if probe.returncode == 0 or server.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        log = (tmp_path / "xorg.log").read_text() if (tmp_path / "xorg.log").exists() else ""
        assert probe.returncode == 0, probe.stderr + log[-3000:]
        yield display, probe.stdout
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_dummy_server_starts_from_the_unit_and_answers_xdpyinfo(tmp_path: Path) -> None:
    with dummy_server(tmp_path) as (_, info):
        assert "dimensions:    1400x900 pixels" in info
        assert "depth of root window:    24 planes" in info


@pytest.mark.parametrize(("opengl", "runs_x"), [(None, True), (False, False)])
def test_every_node_of_a_cloud_pool_runs_the_x_server_after_the_gpu_set_up(
    opengl, runs_x, tmp_path: Path
):
    keys = _trackday_keys(shipped_values("gcp"))
    if opengl is not None:
        keys["deepracer"] = {"opengl": opengl}
    pool = PoolSpec.from_config(parse(keys), "gcp")
    for role in ("manager", "worker"):
        node = pool.bootstrap(role, SSH_KEY)
        written = files(node)
        assert (f"{bootstrap.SYSTEMD_DIR}/{xorg.UNIT_NAME}" in written) is runs_x
        assert (xorg.SETUP_SCRIPT in written) is runs_x
        script = written[bootstrap.BOOTSTRAP_SCRIPT]
        enable = f"systemctl enable --now {xorg.UNIT_NAME}"
        assert (enable in script) is runs_x
        if runs_x:  # the driver and the NVIDIA runtime are there when the X server starts
            assert script.index("nvidia-ctk runtime configure") < script.index(enable)
            path = tmp_path / f"{role}-user-data"
            path.write_text(bootstrap.user_data(node))
            assert path.stat().st_size < 16 * 1024  # AWS's user data limit
            checked = subprocess.run(
                ["cloud-init", "schema", "--config-file", str(path)], capture_output=True, text=True
            )
            assert checked.returncode == 0, checked.stdout + checked.stderr
