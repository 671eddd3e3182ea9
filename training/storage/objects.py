"""Small whole-object operations (markers, manifests, listings), each retried whole on
transient errors, and the configured filesystem for byte-level work elsewhere."""

from __future__ import annotations

import fsspec

from training.storage.endpoint import Endpoint
from training.storage.explain import bucket_exists, missing_bucket, run
from training.storage.filesystems import Site, site
from training.storage.reading import read_sidecar
from training.storage.urls import locate, require_key


def checksum(url: str, *, endpoint: Endpoint | None = None) -> str | None:
    """The sha256 hex digest the sidecar holds for `url`, None when there is no sidecar."""
    return run(url, endpoint, read_sidecar)


def exists(url: str, *, endpoint: Endpoint | None = None) -> bool:
    """Whether an object (or folder/prefix) exists at `url`."""
    return run(url, endpoint, lambda where: bool(where.fs.exists(where.path)))


def read_text(url: str, *, endpoint: Endpoint | None = None) -> str:
    """A small UTF-8 object (marker, manifest) read whole."""
    return run(url, endpoint, lambda where: where.fs.cat_file(where.path).decode("utf-8"))


def write_text(url: str, text: str, *, endpoint: Endpoint | None = None) -> None:
    """Write a small UTF-8 object whole (markers, manifests)."""
    require_key(locate(url))
    run(url, endpoint, lambda where: where.fs.pipe_file(where.path, text.encode("utf-8")))


def list_files(url: str, *, endpoint: Endpoint | None = None) -> list[str]:
    """Every object under `url`, recursively, as URLs of the same form (sidecars included)."""

    def operation(where: Site) -> list[str]:
        found = sorted(where.fs.find(where.path))
        if not found and where.loc.scheme != "file" and not bucket_exists(where):
            raise missing_bucket(where)
        return [where.loc.url_of(path) for path in found]

    return run(url, endpoint, operation)


def filesystem(
    url: str, *, endpoint: Endpoint | None = None
) -> tuple[fsspec.AbstractFileSystem, str]:
    """The configured fsspec filesystem for `url` and the path in it, for byte-level work
    this package does not offer (write bytes, delete)."""
    where = site(url, endpoint)
    return where.fs, where.path
