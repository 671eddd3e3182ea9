"""A run's objects in its bucket: write, list, read, delete, with a chosen endpoint and keys.

The `trackday dr` commands and the Pulumi program both write a run's files (custom files,
params YAML) and the CLI copies models between buckets, each side with its own endpoint and
credentials (the local S3 server's keys, the operator's own AWS login). Like the rest of
training.storage, every function takes `endpoint=` (a `storage.Endpoint` record); without
one, the endpoint `storage.environment()` names for the calling block, else the process
environment's. The byte-level operations training.storage's file API does not offer (write
bytes, delete, read bytes) go through the filesystem it configures.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from training import storage


def write_objects(
    bucket_url: str, objects: Mapping[str, bytes], *, endpoint: storage.Endpoint | None = None
) -> list[str]:
    """Write each object (key -> content) under `bucket_url`; returns the URLs written."""
    written = []
    for key, content in objects.items():
        url = storage.join(bucket_url, key)
        fs, path = storage.filesystem(url, endpoint=endpoint)
        try:
            fs.pipe_file(path, content)
        except Exception as error:  # one line whatever the back-end raised
            raise storage.StorageError(f"{url}: could not write ({error})") from None
        written.append(url)
    return written


def list_keys(
    bucket_url: str, prefix: str, *, endpoint: storage.Endpoint | None = None
) -> list[str]:
    """The keys of every object under `<prefix>/` (empty when there is none)."""
    _, root = storage.filesystem(bucket_url, endpoint=endpoint)
    fs, path = storage.filesystem(storage.join(bucket_url, prefix), endpoint=endpoint)
    try:
        found = fs.find(path + "/")
    except Exception as error:
        raise storage.StorageError(f"{bucket_url}/{prefix}: could not list ({error})") from None
    return sorted(p.removeprefix(f"{root}/") for p in found)


def delete_prefix(bucket_url: str, prefix: str, *, endpoint: storage.Endpoint | None = None) -> int:
    """Delete every object under `<prefix>/`; returns how many."""
    found = list_keys(bucket_url, prefix, endpoint=endpoint)
    if found:
        fs, root = storage.filesystem(bucket_url, endpoint=endpoint)
        fs.rm([f"{root}/{key}" for key in found])
    return len(found)


def read_object(url: str, *, endpoint: storage.Endpoint | None = None) -> bytes | None:
    """An object's bytes, None when there is no such object."""
    fs, path = storage.filesystem(url, endpoint=endpoint)
    try:
        return fs.cat_file(path)
    except FileNotFoundError:
        return None
    except Exception as error:
        raise storage.StorageError(f"{url}: could not read ({error})") from None


def read_json(url: str, *, endpoint: storage.Endpoint | None = None) -> dict:
    """A small JSON object, {} when there is none."""
    data = read_object(url, endpoint=endpoint)
    return json.loads(data) if data is not None else {}


class PrefixTaken(storage.StorageError):
    """A training would start on a prefix holding an earlier run's objects."""


def claim_prefix(
    bucket_url: str,
    prefix: str,
    wipe: bool,
    how_to_wipe: str,
    *,
    endpoint: storage.Endpoint | None = None,
) -> None:
    """DRfC's rule for dr-start-training: a prefix holding objects (a leftover
    `model/.finished` makes the workers stop at once; old checkpoints mix in) is refused
    unless wiping was asked for, in which case it is emptied."""
    existing = list_keys(bucket_url, prefix, endpoint=endpoint)
    if existing and not wipe:
        raise PrefixTaken(
            f"{bucket_url}/{prefix} exists ({len(existing)} objects): pick a "
            f"new modelPrefix, or {how_to_wipe} to delete it first"
        )
    if existing:
        delete_prefix(bucket_url, prefix, endpoint=endpoint)
