"""Reading a tar stream from outside (a bucket, a user) without letting it hurt the reader.

An archive is untrusted: anyone who can write the bucket can replace it. Reading it must
not exhaust memory or disk, nor write outside the extraction folder. So, member by member,
before any of its bytes are read:

- only regular files and folders pass; links, devices, FIFOs and sparse files are refused;
- names are confined: no absolute path, no `..`; GNU tar's `./` root entry and `./` prefixes
  (what `tar -C data .` writes) are the folder itself;
- a member over `member_bytes` is refused from its header, so a 3 GiB member costs nothing;
- the bytes and members so far must stay within a ratio of the compressed bytes read so far
  (plus a floor): a decompression bomb is refused within `floor_bytes` of output. Real tubs
  are JPEG images, which compress by about 1.4 (bench: sample tub), far under `ratio`;
- extended headers (PAX, GNU long names) over `header_bytes` are refused before `tarfile`
  reads them whole into memory, and `tarfile`'s list of members is dropped as it grows.

The caps do not come from the archive's own manifest: that is written last (after the
payload hash) and is as untrusted as the rest, so it cannot bound what comes before it.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import zstandard

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20


class ArchiveError(Exception):
    """A tub or archive that cannot be used; the message says what and how to fix it."""


@dataclass(frozen=True)
class Limits:
    """What one archive may cost; the defaults leave real tubs a wide margin."""

    member_bytes: int = 64 << 20  # a camera frame is tens of kB, a catalog under 1 MB
    header_bytes: int = 1 << 20  # one PAX or long-name header
    ratio: int = 16  # bytes out per compressed byte in
    floor_bytes: int = 64 << 20
    compressed_per_member: int = 128  # a member costs at least its compressed image
    floor_members: int = 10_000


class _GuardedTarInfo(tarfile.TarInfo):
    """Refuses what `tarfile` would otherwise read whole, or expand, before we see it."""

    limits = Limits()
    _EXTENDED = (
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
    )

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:  # type: ignore[override]
        if self.type == tarfile.GNUTYPE_SPARSE:
            raise ArchiveError(f"archive member {self.name!r} is a sparse file; not accepted")
        if self.type in self._EXTENDED and self.size > self.limits.header_bytes:
            raise ArchiveError(
                f"an extended tar header of {self.size} bytes (over {self.limits.header_bytes})"
                "; not an archive trackday made"
            )
        return super()._proc_member(tar)  # type: ignore[misc]

    def _refuse_sparse(self, *args: object) -> None:
        raise ArchiveError("archive holds a PAX sparse file; not accepted")

    _proc_gnusparse_00 = _proc_gnusparse_01 = _proc_gnusparse_10 = _refuse_sparse


class _CountingReader(io.RawIOBase):
    """The raw stream with its sniffed first bytes put back in front, counting what passes."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head = head
        self._rest = rest
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
        else:
            data = self._rest.read(len(buffer))
            n = len(data)
            buffer[:n] = data
        self.count += n
        return n


def _open_tar(stream: BinaryIO, limits: Limits) -> tuple[tarfile.TarFile, _CountingReader]:
    """A streaming TarFile over zstd, gzip or plain tar, and the compressed-byte counter."""
    head = stream.read(4)
    counter = _CountingReader(head, stream)
    whole = io.BufferedReader(counter, buffer_size=CHUNK)
    guarded = type("_TarInfo", (_GuardedTarInfo,), {"limits": limits})
    if head == ZSTD_MAGIC:
        reader = zstandard.ZstdDecompressor().stream_reader(whole, read_size=CHUNK)
        return tarfile.open(fileobj=reader, mode="r|", tarinfo=guarded), counter
    if head.startswith(GZIP_MAGIC):  # gzip's reader, not tarfile's: that one fails on a cut header
        unzipped = gzip.GzipFile(fileobj=whole, mode="rb")
        return tarfile.open(fileobj=unzipped, mode="r|", tarinfo=guarded), counter
    if not head:
        raise ArchiveError("the archive is empty")
    return tarfile.open(fileobj=whole, mode="r|", tarinfo=guarded), counter


def member_parts(name: str) -> tuple[str, ...]:
    """The member's path inside the folder; () for the folder itself (`.`, `./`)."""
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if name.startswith("/") or ".." in parts or any("\0" in p for p in parts):
        raise ArchiveError(f"unsafe archive member refused: {name!r} would land outside the folder")
    return parts


@dataclass
class Member:
    """One file or folder of the archive, its data readable once, in order."""

    name: str
    parts: tuple[str, ...]
    size: int
    is_dir: bool
    _tar: tarfile.TarFile
    _info: tarfile.TarInfo

    def chunks(self) -> Iterator[bytes]:
        data = self._tar.extractfile(self._info)
        if data is None:
            return
        while chunk := data.read(CHUNK):
            yield chunk

    def read(self) -> bytes:
        return b"".join(self.chunks())


def members(stream: BinaryIO, limits: Limits = Limits()) -> Iterator[Member]:
    """Each member of the tar stream, refused (ArchiveError) as soon as it breaks a rule."""
    tar, counter = _open_tar(stream, limits)
    total = count = 0
    with tar:
        while (info := tar.next()) is not None:
            tar.members.clear()  # a streaming TarFile keeps every header: memory per member
            parts = member_parts(info.name)
            if not (info.isdir() or info.type in (tarfile.REGTYPE, tarfile.AREGTYPE)):
                raise ArchiveError(f"archive member {info.name} is not a regular file")
            if info.size > limits.member_bytes:
                raise ArchiveError(
                    f"archive member {info.name} is {info.size} bytes, over the "
                    f"{limits.member_bytes >> 20} MiB a tub file may be; not a tub archive"
                )
            total, count = total + info.size, count + 1
            if total > limits.ratio * counter.count + limits.floor_bytes or count > (
                counter.count // limits.compressed_per_member + limits.floor_members
            ):
                raise ArchiveError(
                    f"the archive expands to over {total} bytes in {count} members from "
                    f"{counter.count} compressed bytes: a decompression bomb, refused"
                )
            yield Member(info.name, parts, info.size, info.isdir(), tar, info)
