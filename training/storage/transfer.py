"""Whole-object transfers with end-to-end sha256: upload, download, a streamed read, and a
streamed copy between two buckets (each with its own endpoint).

A sidecar `<url>.sha256` holding the hex digest is written last, once the stored copy has been
read back and hashed: a sidecar means "complete and verified". Reads check against it when
there is one. Memory stays bounded by the chunk size whatever the object's size.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from fsspec.spec import AbstractBufferedFile

from training.storage.endpoint import Endpoint
from training.storage.errors import StorageError, retrying
from training.storage.explain import explained
from training.storage.filesystems import Site, site
from training.storage.progress import Meter, Progress, callback_of
from training.storage.reading import (
    CHUNK_SIZE,
    HashingReader,
    chunks,
    explained_chunks,
    file_chunks,
    hash_chunks,
    mismatch,
    read_sidecar,
    size,
)
from training.storage.urls import require_key


def upload(
    local: Path,
    url: str,
    *,
    progress: Progress | bool | None = None,
    endpoint: Endpoint | None = None,
) -> str:
    """Upload one file, verify the stored copy, then write its sidecar; returns the sha256 hex."""
    local = Path(local)
    if not local.is_file():
        raise StorageError(f"{local}: no such local file; check the path")
    where = site(url, endpoint)
    require_key(where.loc)
    report, total = callback_of(progress), local.stat().st_size
    with explained(where):
        digest = hash_chunks(file_chunks(local), Meter(report, f"hashing {local.name}", total))
        retrying(lambda: _drop_sidecar(where))
        meter = Meter(report, f"uploading {local.name}", total)
        retrying(lambda: where.fs.put_file(str(local), where.path, callback=meter.fsspec()))
        _verify_stored(where, digest, str(local), report)
        _write_sidecar(where, digest)
    return digest


def download(
    url: str,
    local: Path,
    *,
    progress: Progress | bool | None = None,
    endpoint: Endpoint | None = None,
) -> str:
    """Download to a temporary file beside `local`, verify, then rename; returns the sha256 hex."""
    local = Path(local)
    where = site(url, endpoint)
    partial = local.with_name(f".{local.name}.{secrets.token_hex(4)}.part")
    with explained(where):
        expected = retrying(lambda: read_sidecar(where))
        total = size(where)
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            meter = Meter(callback_of(progress), f"downloading {local.name}", total)
            with open(partial, "wb") as out:
                digest = hash_chunks(chunks(where, total), meter, out.write)
            if expected is not None and digest != expected:
                raise mismatch(url, digest, expected)
            os.replace(partial, local)
        finally:
            partial.unlink(missing_ok=True)
    return digest


@contextmanager
def open_stream(url: str, *, endpoint: Endpoint | None = None) -> Iterator[HashingReader]:
    """A readable binary stream for streaming extraction; call .verify() after reading."""
    where = site(url, endpoint)
    with explained(where):
        expected = retrying(lambda: read_sidecar(where))
        total = size(where)
    pieces = explained_chunks(where, total)
    try:
        yield HashingReader(pieces, where.url, expected)
    finally:
        pieces.close()


def copy(
    source_url: str,
    target_url: str,
    *,
    source_endpoint: Endpoint | None = None,
    target_endpoint: Endpoint | None = None,
    progress: Progress | bool | None = None,
    sidecar: bool = True,
) -> str:
    """Stream one object to another place, possibly another endpoint; returns its sha256 hex.

    Read in ranged pieces and written as they come (a multipart upload on object stores), so
    memory stays a few chunks whatever the size. The source is checked against its sidecar
    before the target is committed, the stored copy is read back and hashed, and then the
    target's sidecar is written; `sidecar=False` leaves it out, for layouts another reader
    lists (DeepRacer's model import). A failed copy leaves no partial target behind.
    """
    source = site(source_url, source_endpoint)
    target = site(target_url, target_endpoint)
    require_key(target.loc)
    report = callback_of(progress)
    with explained(source):
        expected = retrying(lambda: read_sidecar(source))
        total = size(source)
    with explained(target):
        retrying(lambda: _drop_sidecar(target))
        digest = retrying(lambda: _stream(source, target, total, expected, report))
        _verify_stored(target, digest, source_url, report)
        if sidecar:
            _write_sidecar(target, digest)
    return digest


def _stream(
    source: Site, target: Site, total: int, expected: str | None, report: Progress | None
) -> str:
    """One attempt at writing the source's bytes to the target as they are read."""
    meter = Meter(report, f"copying {source.url.rsplit('/', 1)[-1]}", total)
    digest = hashlib.sha256()
    out = target.fs.open(target.path, "wb", block_size=CHUNK_SIZE)
    try:
        for chunk in explained_chunks(source, total):
            digest.update(chunk)
            out.write(chunk)
            meter.add(len(chunk))
        if expected is not None and digest.hexdigest() != expected:
            raise mismatch(source.url, digest.hexdigest(), expected)
    except BaseException:
        _abandon(out, target)
        raise
    out.close()
    return digest.hexdigest()


def _abandon(out: object, target: Site) -> None:
    """Leave nothing half-written: an object-store upload is not committed until close, so it
    is discarded; a local file is written in place, so it is removed."""
    with suppress(Exception):
        if isinstance(out, AbstractBufferedFile):
            out.discard()
            out.closed = True  # close(), also at garbage collection, would commit the part
        else:
            out.close()  # type: ignore[attr-defined]
            target.fs.rm_file(target.path)


def _drop_sidecar(where: Site) -> None:
    """A stale sidecar would vouch for the old content."""
    side = where.sidecar()
    if where.fs.exists(side.path):
        where.fs.rm_file(side.path)


def _verify_stored(where: Site, digest: str, origin: str, report: Progress | None) -> None:
    """Read the stored object back and hash it: what is stored is what was sent."""
    total = size(where)
    stored = hash_chunks(chunks(where, total), Meter(report, f"verifying {where.url}", total))
    if stored != digest:
        raise StorageError(
            f"{where.url}: the stored object's sha256 {stored[:12]}... differs from {origin}'s "
            f"{digest[:12]}...; upload again (the transfer was corrupted)"
        )


def _write_sidecar(where: Site, digest: str) -> None:
    retrying(lambda: where.fs.pipe_file(where.sidecar().path, f"{digest}\n".encode()))
