"""The training archive: checked tubs plus the car's config in one file, and its extraction.

Format: an uncompressed tar stream compressed with zstandard (`.tar.zst`). The images are
already JPEG, so spending CPU on deflate (as `tar czf` does) buys almost nothing; zstd at a
low level still squeezes the tar headers, padding and catalogs, so the archive comes out no
larger than the gzip one while packing several times faster (bench/archive.py measures
both). A tar stream, unlike a zip, can be extracted while it downloads.

Inside: `tubs/<name>/...` (each tub as donkeycar wrote it, bad records skipped by adding
them to the manifest's deleted indexes), `config/config.py` and `config/myconfig.py` when
given, and last `trackday-archive.json`: record counts, the payload's sha256, creation time,
trackday version. The payload hash covers every member's name, size and bytes in order.

Old archives (`tar czf` of one tub's contents plus config.py/myconfig.py at the root) are
still read.
"""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import zstandard

from training.donkeycar.archive_manifest import (
    ARCHIVE_MANIFEST,
    CONFIG_FILES,
    ArchiveManifest,
    parse_manifest,
)
from training.donkeycar.tub import IMAGES, MANIFEST, TubProblem, TubScan, scan_tub
from training.donkeycar.untar import ZSTD_MAGIC, ArchiveError, Member, members

ZSTD_LEVEL = 3

Progress = Callable[[int], None]


class TubsRejected(ArchiveError):
    """Tubs with problems, listed one per line, and nothing written."""

    SHOWN = 50

    def __init__(self, problems: list[TubProblem], hint: str) -> None:
        self.problems = problems
        listed = "\n".join(f"  {p}" for p in problems[: self.SHOWN])
        if len(problems) > self.SHOWN:
            listed += f"\n  ... and {len(problems) - self.SHOWN} more"
        super().__init__(f"{len(problems)} problem(s) in the tubs:\n{listed}\n{hint}")


class _PayloadHash:
    """The archive's payload digest: every member's name, size and bytes, in archive order."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def add(self, name: str, data: bytes) -> None:
        self.start(name, len(data))
        self._h.update(data)

    def start(self, name: str, size: int) -> None:
        """Begin a member whose bytes follow through `update`."""
        self._h.update(f"{name}\0{size}\0".encode())

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def _unique_names(tubs: list[Path]) -> list[str]:
    names: list[str] = []
    for tub in tubs:
        base = tub.resolve().name or "tub"
        name, n = base, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.append(name)
    return names


class _TarWriter:
    """Writes a zstd-compressed tar stream, hashing the payload as it goes.

    Headers are built here rather than by `tarfile.TarInfo.tobuf`, which costs about
    40 us a member: more than reading the image itself, and the main cost of packing a
    13,000-image tub. The output is plain ustar, read back by `tarfile` and GNU tar;
    names too long for ustar fall back to tarfile's own PAX header.

    Hashing and compressing run on a thread of their own, a megabyte at a time: both
    release the GIL, so they overlap the reading and checking of the next records.
    """

    FLUSH_BYTES = 1 << 20
    _ZEROS = bytes(512)

    def __init__(self, raw: BinaryIO) -> None:
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=-1)
        self._zst = compressor.stream_writer(raw, closefd=False)
        self._payload = _PayloadHash()
        self._mtime = int(time.time())
        self._template = bytearray(512)
        self._template[100:124] = b"0000644\x000000000\x000000000\x00"
        self._template[136:148] = b"%011o\0" % self._mtime
        self._template[148:157] = b"        0"
        self._template[257:265] = b"ustar\x0000"
        self._template_sum = sum(self._template)
        self._pending: list[bytes] = []
        self._pending_hashed: list[tuple[str, bytes]] = []
        self._pending_bytes = 0
        self._batches: queue.Queue[tuple[list[bytes], list[tuple[str, bytes]]] | None]
        self._batches = queue.Queue(maxsize=4)
        self._failure: BaseException | None = None
        self._worker = threading.Thread(target=self._drain, name="archive-writer", daemon=True)
        self._worker.start()

    def add(self, name: str, data: bytes, hashed: bool = True) -> None:
        pad = -len(data) % 512
        self._pending += (self._header(name, len(data)), data, self._ZEROS[:pad])
        self._pending_bytes += 512 + len(data) + pad
        if hashed:
            self._pending_hashed.append((name, data))
        if self._pending_bytes >= self.FLUSH_BYTES:
            self._flush()

    def payload_sha256(self) -> str:
        """The digest of everything added with `hashed`, once the writer thread has it all."""
        self._flush()
        self._batches.join()
        self._raise_failure()
        return self._payload.hexdigest()

    def close(self) -> None:
        self._pending.append(bytes(1024))  # end-of-archive: two zero blocks
        self._flush()
        self._stop()
        self._raise_failure()
        self._zst.close()

    def __enter__(self) -> _TarWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop()  # a refused or failed archive must not leave the thread waiting

    def _stop(self) -> None:
        if self._worker.is_alive():
            self._batches.put(None)
            self._worker.join()

    def _flush(self) -> None:
        self._raise_failure()
        self._batches.put((self._pending, self._pending_hashed))
        self._pending, self._pending_hashed, self._pending_bytes = [], [], 0

    def _drain(self) -> None:
        while (batch := self._batches.get()) is not None:
            try:
                if self._failure is None:
                    chunks, hashed = batch
                    self._zst.write(b"".join(chunks))
                    for name, data in hashed:
                        self._payload.add(name, data)
            except BaseException as exc:  # handed to the packing thread, raised there
                self._failure = exc
            finally:
                self._batches.task_done()
        self._batches.task_done()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _header(self, name: str, size: int) -> bytes:
        encoded = name.encode()
        prefix, _, base = encoded.rpartition(b"/") if len(encoded) > 100 else (b"", b"", encoded)
        if len(base) > 100 or len(prefix) > 155:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = size, self._mtime, 0o644
            return info.tobuf(tarfile.PAX_FORMAT)
        header = self._template.copy()
        size_field = b"%011o\0" % size
        header[0 : len(base)] = base
        header[124:136] = size_field
        header[345 : 345 + len(prefix)] = prefix
        checksum = self._template_sum + sum(base) + sum(prefix) + sum(size_field)
        header[148:156] = b"%06o\0 " % checksum
        return bytes(header)


def _tub_files(scan: TubScan, skip_bad: bool) -> list[tuple[str, bytes]]:
    """The tub's own files (manifest, catalogs) as they go into the archive."""
    skipped = scan.bad_indexes if skip_bad else set()
    files = [(MANIFEST, scan.manifest_with_deleted(skipped))]
    for catalog in scan.kept_catalogs:
        manifest = Path(catalog).with_suffix(".catalog_manifest").name
        files.append((catalog, (scan.path / catalog).read_bytes()))
        files.append((manifest, (scan.path / manifest).read_bytes()))
    return files


def create_archive(
    tubs: list[Path],
    output: Path,
    config_dir: Path | None = None,
    skip_bad: bool = False,
    progress: Progress | None = None,
) -> ArchiveManifest:
    """Check the tubs and pack them with the car's config into `output`, in one read of each file.

    Packing goes to a `.partial` file renamed at the end, so a refused or interrupted run
    leaves nothing at `output`. `progress` is called with the number of records checked
    since its last call.
    """
    if config_dir and not config_dir.is_dir():
        raise ArchiveError(f"--config-dir {config_dir} is not a folder")
    config_files = [
        config_dir / n for n in CONFIG_FILES if config_dir and (config_dir / n).is_file()
    ]
    names = _unique_names(tubs)
    partial = output.with_name(output.name + ".partial")
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        with partial.open("wb") as raw, _TarWriter(raw) as writer:
            scans = [
                _pack_tub(writer, name, tub, progress)
                for name, tub in zip(names, tubs, strict=True)
            ]
            refuse_problems(scans, skip_bad)
            for name, scan in zip(names, scans, strict=True):
                for rel, data in _tub_files(scan, skip_bad):
                    writer.add(f"tubs/{name}/{rel}", data)
            for path in config_files:
                writer.add(f"config/{path.name}", path.read_bytes())
            manifest = ArchiveManifest(
                tubs={n: len(s.records) for n, s in zip(names, scans, strict=True)},
                skipped={
                    n: len(s.bad_indexes)
                    for n, s in zip(names, scans, strict=True)
                    if s.bad_indexes
                },
                skipped_catalogs={
                    n: s.empty_catalogs
                    for n, s in zip(names, scans, strict=True)
                    if s.empty_catalogs
                },
                payload_sha256=writer.payload_sha256(),
                created=datetime.now(UTC).isoformat(timespec="seconds"),
                config_files=[p.name for p in config_files],
            )
            writer.add(ARCHIVE_MANIFEST, manifest.to_json().encode(), hashed=False)
            writer.close()
        partial.replace(output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return manifest


def _pack_tub(writer: _TarWriter, name: str, tub: Path, progress: Progress | None) -> TubScan:
    count = 0

    def pack(image: str, data: bytes) -> None:
        nonlocal count
        writer.add(f"tubs/{name}/{IMAGES}/{image}", data)
        count += 1
        if progress and count % 256 == 0:
            progress(256)

    scan = scan_tub(tub, sink=pack)
    if progress:
        progress(count % 256)
    return scan


def refuse_problems(scans: list[TubScan], skip_bad: bool) -> None:
    """Raise TubsRejected unless every tub is usable (after skipping bad records, if allowed)."""
    problems = [p for s in scans for p in s.problems]
    fatal = [p for s in scans for p in s.fatal]
    if fatal or (problems and not skip_bad):
        hint = (
            "Fix or remove these tubs."
            if fatal
            else "Fix the records, or pass --skip-bad to leave them out of the archive."
        )
        raise TubsRejected(problems, hint)
    if not any(s.records for s in scans):
        raise ArchiveError("no good records left in the tubs: nothing to train on")


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
    payload = _PayloadHash()
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


def _write_member(member: Member, dest: Path, payload: _PayloadHash, folders: set[str]) -> None:
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
