"""What a real node does with the rendered bootstrap (issue 11 items 6, 7, 9; issue 13 item 12;
issue 10 item 2): run against the real tools where they exist here (systemd-tmpfiles, bash,
sort -V), with stand-ins only for what needs a GPU (nvidia-ctk, docker run, ss)."""

from __future__ import annotations

import configparser
import os
import stat
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from infra import bootstrap
from infra.bootstrap import NodeBootstrap
from training.deepracer.services import SAGEMAKER_DIR

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq7wrFzfOn0XQ3qgKj1TAm1ZcA0IQH2HKxq4V1f1l3M td"
NODE = NodeBootstrap(
    role="worker", cloud="gcp", ssh_user="trackday", ssh_public_key=SSH_KEY, idle_minutes=5
)
GPU = "GPU-0b7a1c8e-2f3d-4e5a-9b6c-7d8e9f0a1b2c"


def _files(node: NodeBootstrap) -> dict[str, str]:
    document = yaml.safe_load(bootstrap.user_data(node))
    return {entry["path"]: entry["content"] for entry in document["write_files"]}


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(0o755)


def _run(script: str, stubs: Path, env: dict[str, str] | None = None):
    return subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{script}"],
        env={"PATH": f"{stubs}:/usr/bin:/bin", **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _between(text: str, start: str, end: str) -> str:
    """The lines of `text` from the one starting with `start` to the next `end` line."""
    lines = text.splitlines()
    first = next(n for n, line in enumerate(lines) if line.startswith(start))
    last = next(n for n in range(first, len(lines)) if lines[n] == end)
    return "\n".join(lines[first : last + 1]) + "\n"


def test_sagemaker_folder_is_roots_and_made_at_every_boot(tmp_path):
    conf = _files(NODE)[bootstrap.TMPFILES_CONF]
    (tmp_path / "tmp").mkdir(mode=0o1777)
    (tmp_path / "conf").write_text(conf)
    # The real systemd-tmpfiles, as systemd-tmpfiles-setup runs it at boot (here in a root).
    subprocess.run(
        ["systemd-tmpfiles", "--create", f"--root={tmp_path}", str(tmp_path / "conf")],
        check=True,
    )
    made = (tmp_path / SAGEMAKER_DIR.lstrip("/")).lstat()
    assert stat.S_ISDIR(made.st_mode)
    assert stat.S_IMODE(made.st_mode) == 0o755, "no other user may write into it"
    if os.geteuid() == 0:
        assert (made.st_uid, made.st_gid) == (0, 0)


def test_bootstrap_refuses_a_sagemaker_folder_someone_else_made(tmp_path):
    script = _files(NODE)[bootstrap.BOOTSTRAP_SCRIPT]
    check = _between(script, 'if [ "$(stat', "fi")
    planted = tmp_path / "sagemaker"
    planted.mkdir()
    planted.chmod(0o777)
    result = _run(check.replace(SAGEMAKER_DIR, str(planted)), tmp_path)
    assert result.returncode == 1
    assert "is not root's own directory" in result.stderr
    planted.chmod(0o755)
    if os.geteuid() == 0:
        assert _run(check.replace(SAGEMAKER_DIR, str(planted)), tmp_path).returncode == 0


@pytest.mark.parametrize(
    ("version", "ok"), [("1.13.5", False), ("1.14.0", True), ("1.17.8", True), ("1.19.0", True)]
)
def test_toolkit_too_old_for_the_mode_setting_fails_the_bootstrap(tmp_path, version, ok):
    script = _files(NODE)[bootstrap.BOOTSTRAP_SCRIPT]
    gate = _between(script, "toolkit=$(nvidia-ctk --version", "fi")
    _stub(tmp_path, "nvidia-ctk", f'echo "NVIDIA Container Toolkit CLI version {version}"')
    result = _run(gate, tmp_path)
    assert (result.returncode == 0) is ok, result.stderr
    if not ok:
        assert f"{version} is older than {bootstrap.MIN_TOOLKIT_VERSION}" in result.stderr


def test_the_runtime_is_set_to_legacy_mode_after_it_is_configured():
    script = _files(NODE)[bootstrap.BOOTSTRAP_SCRIPT]
    mode = "nvidia-ctk config --in-place --set nvidia-container-runtime.mode=legacy"
    assert script.index("nvidia-ctk runtime configure") < script.index(mode)
    assert script.index(mode) < script.index("systemctl restart docker")


@pytest.mark.parametrize("honoured", [True, False])
def test_gpu_assignment_is_checked_with_a_container(tmp_path, honoured):
    """A stand-in `docker run` that, like the runtime in jit-cdi mode before 1.19, shows every
    GPU whatever Swarm assigned, fails the bootstrap; one that honours it passes."""
    script = _files(NODE)[bootstrap.BOOTSTRAP_SCRIPT]
    probe = _between(script, "first=${gpus%%,*}", "fi")
    other = "GPU-ffffffff-0000-1111-2222-333333333333"
    shown = '"$assigned"' if honoured else f"'{GPU}\n{other}'"
    _stub(
        tmp_path,
        "docker",
        'for a in "$@"; do case $a in DOCKER_RESOURCE_GPU=*) assigned=${a#*=};; esac; done\n'
        f"printf '%s\\n' {shown}",
    )
    result = _run(f"gpus={GPU},{other}\ntoolkit=1.18.0\nruntime_config=x\n{probe}", tmp_path)
    assert (result.returncode == 0) is honoured, result.stderr
    if not honoured:
        assert "ignores Swarm's GPU assignment" in result.stderr


@pytest.mark.parametrize("lists", [True, False])
def test_docker_installs_when_cloud_inits_package_update_failed(tmp_path, lists):
    """An apt stand-in that, like apt, cannot locate a package until `update` has fetched the
    package lists: the bootstrap installs Docker whether cloud-init's update worked or not."""
    script = _files(NODE)[bootstrap.BOOTSTRAP_SCRIPT]
    docker = _between(script, "if ! command -v docker", "fi")
    tools = tmp_path / "bin"  # no docker on this PATH, as on a fresh node
    tools.mkdir()
    for tool in ("bash", "touch"):
        (tools / tool).symlink_to(f"/usr/bin/{tool}")
    lists_file = tmp_path / "lists"
    if lists:
        lists_file.touch()
    _stub(
        tools,
        "apt-get",
        f'case " $* " in\n  *" update "*) touch {lists_file} ;;\n'
        f'  *" install "*) [ -f {lists_file} ] || {{\n'
        '      echo "E: Unable to locate package docker.io" >&2; exit 100; }\n'
        f"    touch {tmp_path}/installed ;;\nesac",
    )
    apt_get = 'apt_get() { apt-get -o DPkg::Lock::Timeout=600 "$@"; }\n'
    result = _run(apt_get + docker, tools, env={"PATH": str(tools)})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "installed").exists(), "docker.io was not installed"


def test_bootstrap_is_retried_until_done():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read_string(_files(NODE)[f"{bootstrap.SYSTEMD_DIR}/trackday-bootstrap.service"])
    assert unit["Service"]["Restart"] == "on-failure"
    assert int(unit["Service"]["RestartSec"]) > 0
    # systemd would otherwise give up after 5 starts in 10 s and wait for the next boot.
    assert unit["Unit"]["StartLimitIntervalSec"] == "0"


@pytest.mark.parametrize("ssh_session", [True, False])
def test_an_open_ssh_session_keeps_the_node_up(tmp_path, ssh_session):
    """`pulumi up` and `trackday` work over SSH: a node is not idle while one is connected."""
    idle = _files(replace(NODE, idle_minutes=5))[bootstrap.IDLE_SCRIPT]
    ready, since, off = tmp_path / "ready", tmp_path / "since", tmp_path / "off"
    ready.touch()
    since.write_text(f"{int(time.time()) - 3600}\n")
    _stub(tmp_path, "poweroff-stub", f"touch {off}")
    _stub(tmp_path, "docker", "exit 0")  # no workload container
    _stub(tmp_path, "nvidia-smi", "echo 0")
    line = "0 0 10.42.1.5:22 203.0.113.7:51234" if ssh_session else ""
    _stub(tmp_path, "ss", f"echo '{line}'" if line else "exit 0")
    _stub(tmp_path, "logger", "exit 0")
    script = (
        idle.replace(bootstrap.READY_FILE, str(ready))
        .replace(bootstrap.IDLE_SINCE_FILE, str(since))
        .replace(bootstrap.POWEROFF_SCRIPT, str(tmp_path / "poweroff-stub"))
    )
    result = _run(script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert off.exists() is not ssh_session
