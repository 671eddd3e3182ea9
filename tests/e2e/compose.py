"""A real Docker Compose v2 for the tests, the kind the simulator image runs (2.x).

Debian bookworm's `docker-compose` is v1 (Python); Debian trixie packages v2 (the Go
binary, `docker-compose` 2.26). The binary is static, so it is taken from trixie's package
with apt's own download (a private list folder; the system's sources stay as they are) and
kept under .cache/compose.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "compose"
BINARY = CACHE / "docker-compose"
SUITE = (
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
    "http://deb.debian.org/debian trixie main"
)
PLUGIN_PATH = "usr/libexec/docker/cli-plugins/docker-compose"


def compose_v2() -> Path:
    """The path of a Docker Compose v2 binary, downloaded on first use."""
    if BINARY.exists():
        return BINARY
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        apt = Path(work)
        (apt / "lists" / "partial").mkdir(parents=True)
        (apt / "cache" / "archives" / "partial").mkdir(parents=True)
        (apt / "sources.list").write_text(SUITE + "\n")
        options = [
            "-o",
            f"Dir::Etc::SourceList={apt / 'sources.list'}",
            "-o",
            "Dir::Etc::SourceParts=/dev/null",
            "-o",
            f"Dir::State::Lists={apt / 'lists'}",
            "-o",
            f"Dir::Cache={apt / 'cache'}",
            "-o",
            "APT::Sandbox::User=root",
        ]
        subprocess.run(["apt-get", *options, "update", "-qq"], check=True, timeout=600)
        subprocess.run(
            ["apt-get", *options, "download", "-qq", "docker-compose"],
            check=True,
            cwd=apt,
            timeout=600,
        )
        (deb,) = apt.glob("docker-compose_2.*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(apt / "root")], check=True)
        shutil.move(apt / "root" / PLUGIN_PATH, BINARY)
    version = subprocess.run(
        [str(BINARY), "version", "--short"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert version.startswith("2."), f"{BINARY} is Compose {version}, not v2"
    return BINARY
