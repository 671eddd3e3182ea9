"""Object-storage URLs, parsed once: which scheme, the path its filesystem understands, and
how to spell that path back as a URL of the caller's form. Pure: no network, no environment."""

from __future__ import annotations

import os
from dataclasses import dataclass

from training.storage.errors import StorageError

SCHEMES = ("s3", "gs", "az", "file")
SIDECAR_SUFFIX = ".sha256"
BUCKET_WORD = {"s3": "bucket", "gs": "bucket", "az": "container", "file": "file"}


@dataclass(frozen=True)
class Location:
    """A parsed URL."""

    url: str
    scheme: str  # one of SCHEMES
    path: str  # "bucket/key" for object stores, an absolute path for files
    prefix: str  # what turns an fs path back into a URL of the caller's form

    @property
    def bucket(self) -> str:
        return self.path.split("/", 1)[0] if self.scheme != "file" else ""

    def url_of(self, path: str) -> str:
        return self.prefix + path

    def sidecar(self) -> Location:
        """Where this object's checksum sidecar lives."""
        return locate(self.url + SIDECAR_SUFFIX)


def locate(url: str) -> Location:
    """Parse a URL (or plain path); refuse what this package cannot serve."""
    url = str(url)
    scheme, sep, rest = url.partition("://")
    if not sep:
        return Location(url, "file", os.path.abspath(os.path.expanduser(url)), "")
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise StorageError(
            f"{url}: unsupported URL scheme {scheme!r}; use s3://, gs://, az://, file:// "
            "or a plain path"
        )
    if scheme == "file":
        if not rest.startswith("/"):
            raise StorageError(f"{url}: a file URL needs an absolute path; write file:///abs/path")
        return Location(url, "file", os.path.normpath(rest), "file://")
    if not rest.split("/", 1)[0]:
        raise StorageError(
            f"{url}: the URL names no {BUCKET_WORD[scheme]}; write {scheme}://NAME/key"
        )
    return Location(url, scheme, rest.rstrip("/") or rest, f"{scheme}://")


def require_key(loc: Location) -> None:
    """Refuse a URL that names a bucket but no object in it (for writes)."""
    if loc.scheme != "file" and "/" not in loc.path.strip("/"):
        raise StorageError(
            f"{loc.url}: the URL names a {BUCKET_WORD[loc.scheme]} but no object; "
            f"write {loc.scheme}://{loc.bucket}/path/to/object"
        )


def join(url: str, *parts: str) -> str:
    """Append path parts to a URL or path with single slashes: join("s3://b/run", "model.h5")."""
    pieces = [part.strip("/") for part in parts if part.strip("/")]
    if not pieces:
        return url
    base = url if url.endswith("://") else url.rstrip("/")
    return base + ("" if base.endswith("/") else "/") + "/".join(pieces)
