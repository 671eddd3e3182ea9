"""The zstd-compressed tar stream a training archive is written as, and its payload digest.

The digest covers every member's name, size and bytes in archive order; extraction
(extract.py) recomputes it to check an archive against its manifest.
"""

from __future__ import annotations

import hashlib
import queue
import tarfile
import threading
import time
from typing import BinaryIO

import zstandard

ZSTD_LEVEL = 3


class PayloadHash:
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


class TarWriter:
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
        self._payload = PayloadHash()
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

    def __enter__(self) -> TarWriter:
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
