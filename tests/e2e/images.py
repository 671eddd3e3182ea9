"""Docker images made here for tests: no registry is reachable, so they come from files."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import docker
import pytest


def import_busybox(
    client: docker.DockerClient,
    reference: str,
    applets: tuple[str, ...],
    files: dict[str, bytes] | None = None,
    entrypoint: str | None = None,
) -> str:
    """An image of Debian's busybox-static with these applets and files, made here."""
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        pytest.fail("busybox-static is missing: run scripts/setup test")
    rootfs = io.BytesIO()
    with tarfile.open(fileobj=rootfs, mode="w") as tar:
        tar.add(busybox, arcname="bin/busybox")
        for applet in applets:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        for name, content in (files or {}).items():
            item = tarfile.TarInfo(name)
            item.size, item.mode = len(content), 0o644
            tar.addfile(item, io.BytesIO(content))
        for folder in ("tmp", "run"):
            item = tarfile.TarInfo(folder)
            item.type, item.mode = tarfile.DIRTYPE, 0o1777
            tar.addfile(item)
    repository, tag = reference.split(":")
    changes = [f"ENTRYPOINT {entrypoint}"] if entrypoint else None
    client.api.import_image_from_data(
        rootfs.getvalue(), repository=repository, tag=tag, changes=changes
    )
    return reference
