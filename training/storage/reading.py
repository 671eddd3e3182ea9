"""Reading stored objects in order, in ranged pieces, hashing as they pass, and checking them
against their checksum sidecar (`<object>.sha256`: "complete and verified")."""

from __future__ import annotations

import hashlib
import io
import re
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path

from training.storage.errors import StorageError, retrying
from training.storage.explain import explained
from training.storage.filesystems import Site
from training.storage.progress import Meter

CHUNK_SIZE = 8 * 1024 * 1024
PREFETCH_CHUNKS = 4  # ranged reads in flight (4 x 8 MiB of memory at most)
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def size(where: Site) -> int:
    return int(retrying(lambda: where.fs.size(where.path)))


def chunks(where: Site, total: int) -> Iterator[bytes]:
    """The object's bytes in CHUNK_SIZE pieces, in order, the next few fetched meanwhile.

    Each piece is a ranged read of its own, retried on its own: a dropped connection late in
    a big download costs one piece, and the network works while the consumer hashes/extracts.
    """
    fs = where.fs  # built here, not by each reading thread
    starts = iter(range(0, total, CHUNK_SIZE))

    def fetch(start: int) -> bytes:
        end = min(start + CHUNK_SIZE, total)
        data = retrying(lambda: fs.cat_file(where.path, start=start, end=end))
        if len(data) != end - start:
            raise StorageError(
                f"{where.url}: the object changed while being read (bytes {start}-{end} came "
                f"back as {len(data)}); read it again once writing has finished"
            )
        return data

    with ThreadPoolExecutor(PREFETCH_CHUNKS, thread_name_prefix="storage-read") as pool:
        pending = deque(pool.submit(fetch, start) for start in islice(starts, PREFETCH_CHUNKS))
        try:
            while pending:
                chunk = pending.popleft().result()
                pending.extend(pool.submit(fetch, start) for start in islice(starts, 1))
                yield chunk
        finally:
            for future in pending:
                future.cancel()


def explained_chunks(where: Site, total: int) -> Iterator[bytes]:
    """chunks(), each failure explained against `where`'s URL."""
    pieces = chunks(where, total)
    try:
        while True:
            with explained(where):
                chunk = next(pieces, None)
            if chunk is None:
                return
            yield chunk
    finally:
        pieces.close()


def file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as src:
        while chunk := src.read(CHUNK_SIZE):
            yield chunk


def hash_chunks(
    pieces: Iterator[bytes], meter: Meter, sink: Callable[[bytes], object] | None = None
) -> str:
    """The sha256 hex of every piece, each handed to `sink` and counted on `meter`."""
    digest = hashlib.sha256()
    for chunk in pieces:
        digest.update(chunk)
        if sink is not None:
            sink(chunk)
        meter.add(len(chunk))
    return digest.hexdigest()


def read_sidecar(where: Site) -> str | None:
    """The digest the object's sidecar holds, None when there is no sidecar."""
    side = where.sidecar()
    try:
        text = where.fs.cat_file(side.path).decode("ascii", errors="replace")
    except FileNotFoundError:
        return None
    digest = text.split()[0].lower() if text.split() else ""
    if not _SHA256_HEX.fullmatch(digest):
        raise StorageError(
            f"{side.url}: not a sha256 checksum sidecar (want 64 hex digits); "
            f"upload {where.url} again to rewrite it"
        )
    return digest


def mismatch(url: str, actual: str, expected: str) -> StorageError:
    return StorageError(
        f"{url}: content sha256 {actual[:12]}... does not match its checksum sidecar "
        f"{expected[:12]}...; the object was changed or corrupted, upload it again"
    )


class HashingReader(io.RawIOBase):
    """A binary stream over a stored object that hashes every byte that passes through it."""

    def __init__(self, pieces: Iterator[bytes], url: str, expected: str | None) -> None:
        super().__init__()
        self._chunks = pieces
        self._url = url
        self._buffer = memoryview(b"")
        self._digest = hashlib.sha256()
        self.expected = expected  # the sidecar's digest, None when there is no sidecar
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Up to `size` bytes (all that is left when negative); b"" at the end."""
        wanted = None if size is None or size < 0 else size
        pieces: list[bytes] = []
        got = 0
        while wanted is None or got < wanted:
            if not self._buffer:
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._buffer = memoryview(chunk)
            take = self._buffer if wanted is None else self._buffer[: wanted - got]
            self._buffer = self._buffer[len(take) :]
            pieces.append(bytes(take))
            got += len(take)
        data = b"".join(pieces)
        self._digest.update(data)
        self.bytes_read += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def sha256(self) -> str:
        """The hex digest of what has been read so far."""
        return self._digest.hexdigest()

    def verify(self) -> str:
        """Read whatever the consumer left, then check against the sidecar; returns the digest."""
        while self.read(CHUNK_SIZE):
            pass
        digest = self.sha256()
        if self.expected is not None and digest != self.expected:
            raise mismatch(self._url, digest, self.expected)
        return digest
