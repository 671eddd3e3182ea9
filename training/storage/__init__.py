"""Object storage by URL: one interface for S3, Google Cloud Storage, Azure Blob and local files.

Runs on the operator's machine and inside the trainer container, so it imports neither Pulumi,
the trackday CLI nor Rich. Built on fsspec (s3fs, gcsfs, adlfs).

URLs (urls.py)
    s3://bucket/key, gs://bucket/key, az://container/key, file:///abs/path, or a plain path.

Endpoints and credentials (endpoint.py)
    Each call takes `endpoint=`, an Endpoint record (per scheme: endpoint URL, keys, account);
    without one, the innermost `environment()` block's variables, else the process
    environment, as each cloud's SDK users expect. Nothing here writes os.environ, so two
    buckets behind different endpoints can be used at once, from any thread.

Integrity (transfer.py, reading.py)
    upload() and copy() read the stored object back and hash it (sha256), and only then write
    the sidecar `<url>.sha256` holding the digest: a sidecar means "complete and verified".
    download(), open_stream() and copy() check against the sidecar when there is one. Objects
    move in 8 MiB ranged pieces, a few in flight, so memory stays bounded whatever their size.

Progress (progress.py)
    Transfers take `progress=`, a callback told (phase, bytes done, bytes in all); the CLI
    draws a bar with it, the trainer passes none.

Failures (errors.py, explain.py)
    Transient errors are retried with backoff up to the bound errors.py states
    (RETRY_SECONDS). Every failure surfaces as StorageError, one line: the URL, what went
    wrong, how to fix it.
"""

from training.storage.endpoint import (
    AzureEndpoint,
    Endpoint,
    GcsEndpoint,
    S3Endpoint,
    environment,
    in_this_block,
)
from training.storage.errors import StorageError
from training.storage.objects import (
    checksum,
    exists,
    filesystem,
    list_files,
    read_text,
    write_text,
)
from training.storage.progress import Progress
from training.storage.reading import HashingReader
from training.storage.transfer import copy, download, open_stream, upload
from training.storage.urls import SIDECAR_SUFFIX, join

__all__ = [
    "SIDECAR_SUFFIX",
    "AzureEndpoint",
    "Endpoint",
    "GcsEndpoint",
    "HashingReader",
    "Progress",
    "S3Endpoint",
    "StorageError",
    "checksum",
    "copy",
    "download",
    "environment",
    "exists",
    "filesystem",
    "in_this_block",
    "join",
    "list_files",
    "open_stream",
    "read_text",
    "upload",
    "write_text",
]
