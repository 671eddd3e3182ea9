"""Extracting a training archive as it downloads: the trackday format and the old `.tar.gz`.

The archive is untrusted: untar.py bounds what it may cost and where its members land;
this module checks the payload digest against the manifest and adopts old one-tub archives.
"""

from __future__ import annotations

import os
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

from training.donkeycar.archive_manifest import (
    ARCHIVE_MANIFEST,
    CONFIG_FILES,
    ArchiveManifest,
    parse_manifest,
)
from training.donkeycar.tar_writer import PayloadHash
from training.donkeycar.tub import MANIFEST
from training.donkeycar.untar import ZSTD_MAGIC, ArchiveError, Member, members

Progress = Callable[[int], None]


@dataclass
class ExtractedArchive:
    """Where an extracted archive's tubs and config landed."""

    tubs: list[Path]
    config_dir: Path
    manifest: ArchiveManifest | None  # None for an old-format archive


def extract_archive(
    stream: BinaryIO, dest: Path, progress: Progress | None = None
) -> ExtractedArchive:
    """Extract a training archive from a stream as it arrives, checking its payload hash.

    Accepts the trackday format and the old one-tub `.tar.gz` (GNU tar's `./` names
    included). The archive is untrusted: untar.py bounds what it may cost and where its
    members land; the manifest is checked against its schema and every tub it names must
    be a folder the archive itself put under `tubs/`.
    """
    dest.mkdir(parents=True, exist_ok=True)
    payload = PayloadHash()
    manifest: ArchiveManifest | None = None
    folders: set[str] = set()  # made already: one mkdir per folder, not per file
    try:
        for member in members(stream):
            if member.name == ARCHIVE_MANIFEST:
                manifest = parse_manifest(member.read())
            elif member.is_dir:
                os.makedirs(os.path.join(dest, *member.parts), exist_ok=True)
            else:
                _write_member(member, dest, payload, folders)
                if progress and member.name.endswith((".jpg", ".jpeg", ".png")):
                    progress(1)
    except (tarfile.TarError, zstandard.ZstdError, EOFError, OSError) as exc:
        raise ArchiveError(f"the archive is damaged or not a tar archive ({exc})") from exc
    if manifest is None:
        return _adopt_old_format(dest)
    if payload.hexdigest() != manifest.payload_sha256:
        raise ArchiveError(
            "archive payload checksum mismatch: the archive was altered or damaged; "
            "archive the tubs again"
        )
    tubs = [dest / "tubs" / name for name in manifest.tubs]
    missing = [t.name for t in tubs if not t.is_dir() or t.is_symlink()]
    if missing:
        raise ArchiveError(f"{ARCHIVE_MANIFEST} names tubs the archive lacks: {missing}")
    return ExtractedArchive(tubs=tubs, config_dir=dest / "config", manifest=manifest)


def _write_member(member: Member, dest: Path, payload: PayloadHash, folders: set[str]) -> None:
    """Stream one regular file to disk, hashing it as it goes."""
    if not member.parts:
        raise ArchiveError(f"archive member {member.name!r} is a file where the folder should be")
    target = os.path.join(dest, *member.parts)
    folder = os.path.dirname(target)
    if folder not in folders:
        os.makedirs(folder, exist_ok=True)
        folders.add(folder)
    payload.start(member.name, member.size)
    with open(target, "wb") as out:
        for chunk in member.chunks():
            payload.update(chunk)
            out.write(chunk)


def _adopt_old_format(dest: Path) -> ExtractedArchive:
    """Rearrange an old one-tub archive into the layout of the current format."""
    root = dest
    if not (root / MANIFEST).is_file():
        entries = [p for p in dest.iterdir() if p.is_dir()]
        if len(entries) == 1 and (entries[0] / MANIFEST).is_file():
            root = entries[0]
        else:
            raise ArchiveError(
                f"no {MANIFEST} at the archive root: an old-format archive holds one tub's "
                "contents at its root; make a new one with `trackday donkey archive TUB`"
            )
    tub = dest / "tubs" / "data"
    config_dir = dest / "config"
    tub.mkdir(parents=True)
    config_dir.mkdir()
    for name in CONFIG_FILES:
        for where in {root, dest}:
            if (where / name).is_file():
                shutil.move(where / name, config_dir / name)
    for entry in list(root.iterdir()):
        if entry.name not in ("tubs", "config"):
            shutil.move(entry, tub / entry.name)
    if root != dest:
        root.rmdir()
    return ExtractedArchive(tubs=[tub], config_dir=config_dir, manifest=None)


def read_manifest(archive: Path) -> ArchiveManifest | None:
    """The manifest of a trackday archive on disk (read by streaming to its end)."""
    with archive.open("rb") as f:
        if f.read(4) != ZSTD_MAGIC:
            return None
        f.seek(0)
        for member in members(f):
            if member.name == ARCHIVE_MANIFEST:
                return parse_manifest(member.read())
    return None
