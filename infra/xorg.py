"""A headless X server on a node's NVIDIA GPU, so the DeepRacer simulator renders with OpenGL
on the GPU instead of the CPU (issue 15).

DRfC does this by hand on headless servers (docs/opengl.md; utils/setup-xorg.sh,
utils/start-xorg.sh): find the GPU's PCI bus id, write an xorg.conf for the `nvidia` driver
on it with a `DRI` section of mode 0666 so that containers may open it, start Xorg on display
`:99` (its `DR_DISPLAY` default) and hand the simulation containers `DISPLAY`, the X socket
folder `/tmp/.X11-unix` and `USE_EXTERNAL_X=true` (docker/docker-compose-local-xorg.yml);
simapp's run.sh then uses that display instead of starting Xvfb in the container
(docker/files/robomaker/run.sh, v6.0.4). Here the same steps are a systemd unit, so the
server comes back after a crash or a reboot, and a setup script that runs before each start
(the bus id is read from `nvidia-smi`, as the node's driver may be replaced under it).

Pure functions of plain values, as infra/bootstrap/'s. The `dummy` driver (Debian's
xserver-xorg-video-dummy) is a test-only choice: the same unit and configuration path on a
machine without a GPU.
"""

from __future__ import annotations

from typing import Literal, get_args

from infra.bootstrap import NodeService, shell_script

Driver = Literal["nvidia", "dummy"]
DISPLAY = ":99"  # DRfC's DR_DISPLAY default: clear of a desktop's :0/:1
CONFIG_FILE = "/etc/trackday/xorg.conf"
SETUP_SCRIPT = "/usr/local/sbin/trackday-xorg-setup"
UNIT_NAME = "trackday-xorg.service"
LOG_FILE = "/var/log/trackday-xorg.log"
# The server binary itself: /usr/bin/Xorg is Debian's wrapper, which refuses to start without
# a console unless xserver-xorg-legacy is set to `anybody` (DRfC's sed on Xwrapper.config).
XORG = "/usr/lib/xorg/Xorg"
# simapp's own Xvfb screen (run.sh: `-screen 0 1400x900x24`); the modeline fits it only.
SCREEN = (1400, 900, 24)
PACKAGES: dict[Driver, tuple[str, ...]] = {
    "nvidia": ("xserver-xorg-core", "x11-utils"),
    "dummy": ("xserver-xorg-core", "xserver-xorg-video-dummy", "x11-utils"),
}


def _check(driver: str) -> None:
    if driver not in get_args(Driver):
        raise ValueError(f"X server driver {driver!r} must be one of {', '.join(get_args(Driver))}")


def xorg_conf(driver: Driver, bus_id: str | None = None) -> str:
    """The server's configuration: one screen on the GPU at `bus_id` (Xorg's
    `PCI:bus@domain:device:function`, decimal) or on the dummy driver, and DRI open to all.

    `AllowEmptyInitialConfiguration` lets the nvidia driver start with no monitor attached
    (what `nvidia-xconfig --allow-empty-initial-configuration` writes on headless GPUs)."""
    _check(driver)
    width, height, depth = SCREEN
    if driver == "nvidia":
        if not bus_id:
            raise ValueError("the nvidia X server needs the GPU's PCI bus id")
        device = (
            f'    Driver "nvidia"\n    BusID "{bus_id}"\n'
            '    Option "AllowEmptyInitialConfiguration" "true"\n'
        )
    else:
        device = '    Driver "dummy"\n    VideoRam 65536\n'
    return f"""\
# Rendered by trackday (infra/xorg.py): headless X server for the DeepRacer simulator.
Section "ServerLayout"
    Identifier "trackday"
    Screen "screen"
EndSection

Section "Device"
    Identifier "gpu"
{device}EndSection

Section "Monitor"
    Identifier "monitor"
    HorizSync 5.0 - 1000.0
    VertRefresh 5.0 - 200.0
    # the screen mode (from: gtf {width} {height} 60), which the dummy driver lacks
    Modeline "{width}x{height}" 104.23 1400 1480 1632 1864 900 901 904 932 -HSync +Vsync
EndSection

Section "Screen"
    Identifier "screen"
    Device "gpu"
    Monitor "monitor"
    DefaultDepth {depth}
    SubSection "Display"
        Depth {depth}
        Modes "{width}x{height}"
        Virtual {width} {height}
    EndSubSection
EndSection

# DRfC's setup-xorg.sh: containers (any user) may open the GPU's DRI devices.
Section "DRI"
    Mode 0666
EndSection
"""


# nvidia-smi prints the bus id as hex `domain:bus:device.function` (00000001:3B:00.0);
# Xorg wants decimal `PCI:bus@domain:device:function` (xorg.conf(5), BusID).
_NVIDIA_BUS_ID = """\
# The first line by parameter expansion: `| head -n 1` under pipefail fails the script when
# head closes the pipe before nvidia-smi has written every GPU's line.
pci=$(nvidia-smi --query-gpu=pci.bus_id --format=csv,noheader || true)
pci=${pci%%$'\\n'*}
IFS=':.' read -r domain bus device function <<< "$pci"
if [ -z "$function" ]; then
  echo "trackday: no GPU bus id from nvidia-smi (got '$pci'); set" \\
    "trackday:deepracer.opengl false to run the simulator without the GPU X server" >&2
  exit 1
fi
bus_id=$(printf 'PCI:%d@%d:%d:%d' "0x$bus" "0x$domain" "0x$device" "0x$function")
# The driver's own X module ships with the driver (or as xserver-xorg-video-nvidia-<major>).
module=$(find /usr/lib/xorg/modules /usr/lib/x86_64-linux-gnu/nvidia -name 'nvidia_drv.so' \\
  -print -quit 2>/dev/null || true)
if [ -z "$module" ]; then
  version=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader)
  major=${version%%.*}
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \\
    "xserver-xorg-video-nvidia-$major" || {
    echo "trackday: the NVIDIA driver $major has no X module (nvidia_drv.so) and" \\
      "xserver-xorg-video-nvidia-$major does not install; set trackday:deepracer.opengl" \\
      "false to run the simulator without the GPU X server" >&2
    exit 1
  }
fi
"""


def setup_script(driver: Driver) -> str:
    """Run before each start of the unit, as root: install the X server if missing and write
    its configuration (for the nvidia driver, on the first GPU's bus id, as DRfC does)."""
    _check(driver)
    packages = " ".join(PACKAGES[driver])
    if driver == "nvidia":
        find_gpu, conf = _NVIDIA_BUS_ID, xorg_conf("nvidia", "$bus_id")
    else:
        find_gpu, conf = "", xorg_conf("dummy")
    if any(c in conf.replace("$bus_id", "") for c in "$`\\"):
        raise ValueError("the X configuration must not hold shell expansions")
    return shell_script(
        f"Writes the headless X server's configuration ({driver} driver) for {UNIT_NAME}.",
        f"""\
if [ ! -x {XORG} ] || ! command -v xdpyinfo >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends {packages}
fi
{find_gpu}mkdir -p "$(dirname {CONFIG_FILE})"
cat > {CONFIG_FILE}.new <<EOF
{conf}EOF
mv {CONFIG_FILE}.new {CONFIG_FILE}
""",
    )


def unit(driver: Driver) -> str:
    """The systemd unit that keeps the X server running on DISPLAY (DRfC starts it in a
    detached `screen` session instead, which nothing restarts).

    `-nolisten tcp`: reachable through its socket only, which the simulation containers get
    as a mount (training/deepracer/services.py X_SOCKET_DIR); `-noreset`: the last client
    leaving does not reset it."""
    _check(driver)
    # The network for the setup script's apt-get; the driver's daemon where there is one.
    after = " nvidia-persistenced.service" if driver == "nvidia" else ""
    return f"""\
[Unit]
Description=trackday: headless X server on display {DISPLAY} ({driver}) for GPU rendering
After=network-online.target{after}
Wants=network-online.target

[Service]
ExecStartPre=/bin/bash {SETUP_SCRIPT}
ExecStart={XORG} {DISPLAY} -config {CONFIG_FILE} -nolisten tcp -noreset -logfile {LOG_FILE}
Restart=always
RestartSec=5
TimeoutStartSec=900

[Install]
WantedBy=multi-user.target
"""


def node_service(driver: Driver = "nvidia") -> NodeService:
    """The X server as a node service (written by cloud-init, enabled by the bootstrap)."""
    return NodeService(
        UNIT_NAME, unit(driver), {SETUP_SCRIPT: setup_script(driver)}, every_node=True
    )
