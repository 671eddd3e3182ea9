"""Object storage by URL: one interface for S3, Google Cloud Storage, Azure Blob and local files.

Runs on the operator's machine and inside the trainer container, so it imports neither Pulumi
nor the trackday CLI. Built on fsspec (s3fs, gcsfs, adlfs).

URLs
    s3://bucket/key, gs://bucket/key, az://container/key, file:///abs/path, or a plain path.

Where endpoints and credentials come from (the environment, as each cloud's SDK users expect)
    S3     endpoint: AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL (S3-compatible servers such as
           `rclone serve s3`; path-style addressing is used for them), else AWS itself.
           Credentials: the standard AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,
           AWS_PROFILE, the instance profile or task role in the cloud).
    GCS    Application default credentials (GOOGLE_APPLICATION_CREDENTIALS, the attached
           service account). STORAGE_EMULATOR_HOST points at an emulator (no credentials).
    Azure  AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with
           DefaultAzureCredential (managed identity, workload identity, `az login`): no keys.

Integrity
    upload() hashes the file (sha256), uploads it, reads the stored object back and hashes it
    again, and only then writes the sidecar object `<url>.sha256` holding the hex digest: a
    sidecar means "complete and verified". download() and open_stream() check against the
    sidecar when there is one.

Failures
    Transient errors (connection refused or reset, timeouts, 5xx, throttling) are retried with
    exponential backoff; no new attempt starts after RETRY_SECONDS, so a server that is down
    fails within about 15 s. Every failure surfaces as StorageError, one line: the URL, what
    went wrong, how to fix it.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import secrets
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TypeVar

import fsspec
import tenacity
from fsspec.callbacks import Callback
from fsspec.implementations.local import LocalFileSystem
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

__all__ = [
    "HashingReader",
    "StorageError",
    "checksum",
    "download",
    "environment",
    "exists",
    "join",
    "list_files",
    "open_stream",
    "read_text",
    "upload",
    "write_text",
]

SIDECAR_SUFFIX = ".sha256"
CHUNK_SIZE = 8 * 1024 * 1024
RETRY_SECONDS = 8.0  # no new attempt starts after this; the last one still runs to its end
CONNECT_TIMEOUT_S = 5  # an endpoint that drops packets fails within the retry bound too
PREFETCH_CHUNKS = 4  # ranged reads in flight (4 x 8 MiB of memory at most)
READ_TIMEOUT_S = 60  # a stalled transfer counts as transient and is retried
SCHEMES = ("s3", "gs", "az", "file")
_BUCKET_WORD = {"s3": "bucket", "gs": "bucket", "az": "container", "file": "file"}
_CREDENTIAL_HINT = {
    "s3": "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or the instance profile's policy)",
    "gs": "check GOOGLE_APPLICATION_CREDENTIALS (or the service account's roles on the bucket)",
    "az": "check AZURE_STORAGE_CONNECTION_STRING (or the managed identity's role on the account)",
    "file": "check the file's permissions",
}
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")

T = TypeVar("T")


class StorageError(Exception):
    """A storage operation failed; str() is one line: the URL, what went wrong, how to fix it."""


# --------------------------------------------------------------------------- locations


@dataclass(frozen=True)
class _Location:
    """A parsed URL: which filesystem, the path it understands, and how to spell URLs back."""

    url: str
    scheme: str  # one of SCHEMES
    path: str  # "bucket/key" for object stores, an absolute path for files
    prefix: str  # what turns an fs path back into a URL of the caller's form

    @property
    def bucket(self) -> str:
        return self.path.split("/", 1)[0] if self.scheme != "file" else ""

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        env = _environment(self.scheme)
        settings = dict(env)
        if self.scheme == "az" and not (
            settings["AZURE_STORAGE_CONNECTION_STRING"] or settings["AZURE_STORAGE_ACCOUNT_NAME"]
        ):
            raise StorageError(
                f"{self.url}: no Azure storage account configured; set "
                "AZURE_STORAGE_ACCOUNT_NAME (with a managed identity or `az login`) "
                "or AZURE_STORAGE_CONNECTION_STRING"
            )
        return _filesystem(self.scheme, env)

    def url_of(self, path: str) -> str:
        return self.prefix + path

    def sidecar(self) -> _Location:
        return _locate(self.url + SIDECAR_SUFFIX)


def _locate(url: str) -> _Location:
    """Parse a URL (or plain path); refuse what this module cannot serve."""
    url = str(url)
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _Location(url, "file", os.path.abspath(os.path.expanduser(url)), "")
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise StorageError(
            f"{url}: unsupported URL scheme {scheme!r}; use s3://, gs://, az://, file:// "
            "or a plain path"
        )
    if scheme == "file":
        if not rest.startswith("/"):
            raise StorageError(f"{url}: a file URL needs an absolute path; write file:///abs/path")
        return _Location(url, "file", os.path.normpath(rest), "file://")
    if not rest.split("/", 1)[0]:
        raise StorageError(
            f"{url}: the URL names no {_BUCKET_WORD[scheme]}; write {scheme}://NAME/key"
        )
    return _Location(url, scheme, rest.rstrip("/") or rest, f"{scheme}://")


def _require_key(loc: _Location) -> None:
    if loc.scheme != "file" and "/" not in loc.path.strip("/"):
        raise StorageError(
            f"{loc.url}: the URL names a {_BUCKET_WORD[loc.scheme]} but no object; "
            f"write {loc.scheme}://{loc.bucket}/path/to/object"
        )


# --------------------------------------------------------------------------- filesystems

_ENV_KEYS = {
    "s3": (
        "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
    ),
    "gs": ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"),
    "az": ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_CLIENT_ID"),
    "file": (),
}  # fmt: skip


def _environment(scheme: str) -> tuple[tuple[str, str | None], ...]:
    """The variables that shape a filesystem: a change of any of them gets a new client."""
    return tuple((key, os.environ.get(key)) for key in _ENV_KEYS[scheme])


def _endpoint(scheme: str) -> str:
    """Where requests for `scheme` go, for error messages."""
    env = os.environ
    if scheme == "s3":
        return env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or "AWS S3"
    if scheme == "gs":
        return env.get("STORAGE_EMULATOR_HOST") or "storage.googleapis.com"
    if scheme == "az":
        found = re.search(r"BlobEndpoint=([^;]+)", env.get("AZURE_STORAGE_CONNECTION_STRING", ""))
        if found:
            return found.group(1)
        account = env.get("AZURE_STORAGE_ACCOUNT_NAME")
        return f"{account}.blob.core.windows.net" if account else "Azure Blob storage"
    return "the local filesystem"


@functools.lru_cache(maxsize=16)
def _filesystem(scheme: str, env: tuple[tuple[str, str | None], ...]) -> fsspec.AbstractFileSystem:
    """One client per scheme and environment; listing caches off (objects change under us)."""
    settings = dict(env)
    common = {"skip_instance_cache": True, "use_listings_cache": False}
    if scheme == "s3":
        import s3fs

        endpoint = settings["AWS_ENDPOINT_URL_S3"] or settings["AWS_ENDPOINT_URL"]
        config = {
            "connect_timeout": CONNECT_TIMEOUT_S,
            "read_timeout": READ_TIMEOUT_S,
            "retries": {"max_attempts": 2, "mode": "standard"},
        }
        if endpoint:
            # S3-compatible servers expect path-style URLs, and some (rclone among them) send
            # a whole-object CRC with ranged reads, which botocore's default check rejects;
            # our sha256 covers the content end to end anyway.
            config["s3"] = {"addressing_style": "path"}
            config["request_checksum_calculation"] = "when_required"
            config["response_checksum_validation"] = "when_required"
        return s3fs.S3FileSystem(endpoint_url=endpoint, config_kwargs=config, **common)
    if scheme == "gs":
        import aiohttp

        token = "anon" if settings["STORAGE_EMULATOR_HOST"] else None
        timeout = aiohttp.ClientTimeout(sock_connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S)
        return _gcs_class()(token=token, requests_timeout=timeout, **common)
    if scheme == "az":
        if settings["AZURE_STORAGE_CONNECTION_STRING"]:
            return _azure_class()(
                connection_string=settings["AZURE_STORAGE_CONNECTION_STRING"], **common
            )
        return _azure_class()(
            account_name=settings["AZURE_STORAGE_ACCOUNT_NAME"], anon=False, **common
        )
    return LocalFileSystem(auto_mkdir=True)


@functools.cache
def _gcs_class() -> type:
    # gcsfs's core class, not the experimental ExtendedGcsFileSystem that `import gcsfs`
    # exports: that one probes each bucket's layout over gRPC first (a minute-long timeout
    # against an emulator) and adds nothing for whole-object reads and writes.
    from gcsfs.core import GCSFileSystem
    from gcsfs.retry import retry_request

    class _Fs(GCSFileSystem):
        """gcsfs retrying once, not six times (up to 30 s asleep): we retry to a deadline."""

        _request = retry_request(retries=2)(GCSFileSystem._request.__wrapped__)

    return _Fs


@functools.cache
def _azure_class() -> type:
    from adlfs import AzureBlobFileSystem
    from azure.storage.blob.aio import BlobServiceClient, ExponentialRetry

    class _Fs(AzureBlobFileSystem):
        """adlfs with the Azure SDK's retries cut short (it backs off 15 s and more)."""

        def do_connect(self) -> None:
            policy = ExponentialRetry(
                initial_backoff=0.5, increment_base=1.5, retry_total=2, random_jitter_range=0.5
            )
            options = {
                "retry_policy": policy,
                "connection_timeout": CONNECT_TIMEOUT_S,
                "read_timeout": READ_TIMEOUT_S,
            }
            if self.connection_string:
                self.service_client = BlobServiceClient.from_connection_string(
                    self.connection_string, **options
                )
            else:
                url = f"https://{self.account_name}.blob.core.windows.net"
                # DefaultAzureCredential as adlfs built it, or what adlfs found in its own
                # environment variables (an account key or SAS token, where one is set).
                credential = self.credential or self.account_key or self.sas_token
                self.service_client = BlobServiceClient(url, credential=credential, **options)

    return _Fs


# --------------------------------------------------------------------------- errors and retries


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _status(exc: BaseException) -> int | None:
    """The HTTP status an SDK exception carries, whichever SDK raised it."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        return response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    for attribute in ("status_code", "status", "code"):
        value = getattr(exc, attribute, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    return None


def _error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return str(getattr(exc, "error_code", "") or "")


_TRANSIENT_TYPES = frozenset(
    {
        "ConnectionError",
        "TimeoutError",
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "ClientConnectionError",
        "ClientPayloadError",
        "ServerDisconnectedError",
        "ServiceRequestError",
        "ServiceResponseError",
        "IncompleteReadError",
        "FSTimeoutError",
        "ChunkedEncodingError",
        "ProxyError",
    }
)  # exception class names (anywhere in the MRO) that mean "try again"
_THROTTLED = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "ServerBusy"}


_UNREACHABLE_TYPES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ClientConnectorError",
        "ConnectionRefusedError",
        "ServiceRequestError",
    }
)  # no connection was made at all


def _is_unreachable(exc: BaseException) -> bool:
    return any(cls.__name__ in _UNREACHABLE_TYPES for cls in type(exc).__mro__)


def _is_transient(exc: BaseException) -> bool:
    """Worth another try: the network or the service hiccupped, not the request."""
    for link in _chain(exc):
        if isinstance(link, StorageError):
            return False
        names = {cls.__name__ for cls in type(link).__mro__}
        if names & _TRANSIENT_TYPES:
            return True
        status = _status(link)
        if status is not None and (status >= 500 or status == 429):
            return True
        if _error_code(link) in _THROTTLED:
            return True
    return False


def _retrying(operation: Callable[[], T]) -> T:
    """Run `operation`, retrying transient failures with exponential backoff for a bounded time."""
    retryer = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_is_transient),
        stop=tenacity.stop_after_delay(RETRY_SECONDS),
        wait=tenacity.wait_exponential(multiplier=0.25, max=4),
        reraise=True,
    )
    return retryer(operation)


def _one_line(text: str) -> str:
    first = next((line.strip() for line in str(text).splitlines() if line.strip()), "")
    return first[:300]


def _bucket_exists(loc: _Location) -> bool:
    """Whether the URL's bucket/container exists; True when unsure."""
    try:
        return bool(loc.fs.exists(loc.bucket))
    except Exception:
        return True


def _missing_bucket(loc: _Location) -> StorageError:
    return StorageError(
        f"{loc.url}: {_BUCKET_WORD[loc.scheme]} {loc.bucket!r} does not exist; "
        "create it or fix the URL"
    )


def _explain(loc: _Location, exc: BaseException) -> StorageError:
    """Turn whatever an SDK raised into one line: the URL, what went wrong, how to fix it."""
    url = loc.url
    links = list(_chain(exc))
    names = {cls.__name__ for link in links for cls in type(link).__mro__}
    statuses = {_status(link) for link in links}
    codes = {_error_code(link) for link in links}
    if names & {"NoCredentialsError", "CredentialUnavailableError", "DefaultCredentialsError"}:
        return StorageError(
            f"{url}: no credentials found for {loc.scheme}://; {_CREDENTIAL_HINT[loc.scheme]}"
        )
    if (
        any(isinstance(link, PermissionError) for link in links)
        or statuses & {401, 403}
        or codes & {"AuthorizationFailure", "AuthenticationFailed", "InvalidAccessKeyId",
                    "SignatureDoesNotMatch", "AccessDenied"}
        or "ClientAuthenticationError" in names
        or any(str(link).startswith("Forbidden") for link in links)
    ):  # fmt: skip
        return StorageError(
            f"{url}: access denied (credentials rejected or not allowed); "
            f"{_CREDENTIAL_HINT[loc.scheme]}"
        )
    reason = _one_line(exc) or type(exc).__name__
    if any(_is_unreachable(link) for link in links):
        return StorageError(
            f"{url}: cannot reach {_endpoint(loc.scheme)} ({reason}); "
            "check that the server is running and the endpoint is right"
        )
    if _is_transient(exc):
        return StorageError(
            f"{url}: {_endpoint(loc.scheme)} kept failing for {RETRY_SECONDS:.0f} s ({reason}); "
            "try again later"
        )
    if (
        any(isinstance(link, FileNotFoundError) for link in links)
        or "ResourceNotFoundError" in names
        or statuses & {404}
    ):
        if loc.scheme == "file":
            return StorageError(f"{url}: no such file; check the path")
        if not _bucket_exists(loc):
            return _missing_bucket(loc)
        return StorageError(f"{url}: no such object; check the URL (list its prefix to see)")
    return StorageError(f"{url}: {type(exc).__name__}: {reason}")


@contextmanager
def _explained(loc: _Location) -> Iterator[None]:
    """Let StorageError through, turn anything else an SDK raises into one."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        raise _explain(loc, exc) from exc


def _run(url: str, operation: Callable[[_Location], T]) -> T:
    """Run a small operation, retried whole on transient errors, its failures explained."""
    loc = _locate(url)
    with _explained(loc):
        return _retrying(lambda: operation(loc))


# --------------------------------------------------------------------------- progress


class _Progress:
    """A transient rich progress bar on stderr, drawn only on a terminal."""

    def __init__(self, enabled: bool) -> None:
        console = Console(stderr=True)
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not (enabled and console.is_terminal),
        )
        self._task = self._bar.add_task("", total=None)

    def __enter__(self) -> _Progress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._bar.__exit__(*exc_info)

    def start(self, description: str, total: int | None) -> None:
        self._bar.reset(self._task, description=description, total=total)

    def advance(self, count: int) -> None:
        self._bar.advance(self._task, count)

    def callback(self) -> Callback:
        """An fsspec callback that drives this bar (for put_file and friends)."""
        bar = self

        class _Callback(Callback):
            def call(self, *args: object, **kwargs: object) -> None:
                bar._bar.update(bar._task, completed=self.value, total=self.size)

        return _Callback()


# --------------------------------------------------------------------------- reading


def _size(loc: _Location) -> int:
    return int(_retrying(lambda: loc.fs.size(loc.path)))


def _chunks(loc: _Location, size: int) -> Iterator[bytes]:
    """The object's bytes in CHUNK_SIZE pieces, in order, the next few fetched meanwhile.

    Each piece is a ranged read of its own, retried on its own: a dropped connection late in
    a big download costs one piece, and the network works while the consumer hashes/extracts.
    """
    starts = iter(range(0, size, CHUNK_SIZE))

    def fetch(start: int) -> bytes:
        end = min(start + CHUNK_SIZE, size)
        data = _retrying(lambda: loc.fs.cat_file(loc.path, start=start, end=end))
        if len(data) != end - start:
            raise StorageError(
                f"{loc.url}: the object changed while being read (bytes {start}-{end} came "
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


def _hash_chunks(
    chunks: Iterator[bytes], progress: _Progress, sink: Callable[[bytes], object] | None = None
) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
        if sink is not None:
            sink(chunk)
        progress.advance(len(chunk))
    return digest.hexdigest()


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as src:
        while chunk := src.read(CHUNK_SIZE):
            yield chunk


def _read_sidecar(loc: _Location) -> str | None:
    side = loc.sidecar()
    try:
        text = side.fs.cat_file(side.path).decode("ascii", errors="replace")
    except FileNotFoundError:
        return None
    digest = text.split()[0].lower() if text.split() else ""
    if not _SHA256_HEX.fullmatch(digest):
        raise StorageError(
            f"{side.url}: not a sha256 checksum sidecar (want 64 hex digits); "
            f"upload {loc.url} again to rewrite it"
        )
    return digest


def _mismatch(url: str, actual: str, expected: str) -> StorageError:
    return StorageError(
        f"{url}: content sha256 {actual[:12]}... does not match its checksum sidecar "
        f"{expected[:12]}...; the object was changed or corrupted, upload it again"
    )


# --------------------------------------------------------------------------- public API


def upload(local: Path, url: str, *, progress: bool = True) -> str:
    """Upload one file, verify the stored copy, then write its sidecar; returns the sha256 hex."""
    local = Path(local)
    if not local.is_file():
        raise StorageError(f"{local}: no such local file; check the path")
    loc = _locate(url)
    _require_key(loc)
    fs, side, size = loc.fs, loc.sidecar(), local.stat().st_size

    def drop_stale_sidecar() -> None:  # a stale sidecar would vouch for the old content
        if fs.exists(side.path):
            fs.rm_file(side.path)

    with _explained(loc), _Progress(progress) as bar:
        bar.start(f"hashing {local.name}", size)
        digest = _hash_chunks(_file_chunks(local), bar)
        _retrying(drop_stale_sidecar)
        bar.start(f"uploading {local.name}", size)
        _retrying(lambda: fs.put_file(str(local), loc.path, callback=bar.callback()))
        bar.start(f"verifying {loc.url}", size)
        stored = _hash_chunks(_chunks(loc, _size(loc)), bar)
        if stored != digest:
            raise StorageError(
                f"{url}: the stored object's sha256 {stored[:12]}... differs from {local}'s "
                f"{digest[:12]}...; upload again (the transfer was corrupted)"
            )
        _retrying(lambda: fs.pipe_file(side.path, f"{digest}\n".encode()))
    return digest


def download(url: str, local: Path, *, progress: bool = True) -> str:
    """Download to a temporary file beside `local`, verify, then rename; returns the sha256 hex."""
    local = Path(local)
    loc = _locate(url)
    partial = local.with_name(f".{local.name}.{secrets.token_hex(4)}.part")
    with _explained(loc), _Progress(progress) as bar:
        expected = _retrying(lambda: _read_sidecar(loc))
        size = _size(loc)
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            bar.start(f"downloading {local.name}", size)
            with open(partial, "wb") as out:
                digest = _hash_chunks(_chunks(loc, size), bar, out.write)
            if expected is not None and digest != expected:
                raise _mismatch(url, digest, expected)
            os.replace(partial, local)
        finally:
            partial.unlink(missing_ok=True)
    return digest


class HashingReader(io.RawIOBase):
    """A binary stream over a stored object that hashes every byte that passes through it."""

    def __init__(self, chunks: Iterator[bytes], loc: _Location, expected: str | None) -> None:
        super().__init__()
        self._chunks = chunks
        self._loc = loc
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
                with _explained(self._loc):
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
            raise _mismatch(self._loc.url, digest, self.expected)
        return digest


@contextmanager
def open_stream(url: str) -> Iterator[HashingReader]:
    """A readable binary stream for streaming extraction; call .verify() after reading."""
    loc = _locate(url)
    with _explained(loc):
        expected = _retrying(lambda: _read_sidecar(loc))
        chunks = _chunks(loc, _size(loc))
    try:
        yield HashingReader(chunks, loc, expected)
    finally:
        chunks.close()


def checksum(url: str) -> str | None:
    """The sha256 hex digest the sidecar holds for `url`, None when there is no sidecar."""
    return _run(url, _read_sidecar)


def exists(url: str) -> bool:
    """Whether an object (or folder/prefix) exists at `url`."""
    return _run(url, lambda loc: bool(loc.fs.exists(loc.path)))


def read_text(url: str) -> str:
    """A small UTF-8 object (marker, manifest) read whole."""
    return _run(url, lambda loc: loc.fs.cat_file(loc.path).decode("utf-8"))


def write_text(url: str, text: str) -> None:
    """Write a small UTF-8 object whole (markers, manifests)."""
    _require_key(_locate(url))
    _run(url, lambda loc: loc.fs.pipe_file(loc.path, text.encode("utf-8")))


def join(url: str, *parts: str) -> str:
    """Append path parts to a URL or path with single slashes: join("s3://b/run", "model.h5")."""
    pieces = [part.strip("/") for part in parts if part.strip("/")]
    if not pieces:
        return url
    base = url if url.endswith("://") else url.rstrip("/")
    return base + ("" if base.endswith("/") else "/") + "/".join(pieces)


def list_files(url: str) -> list[str]:
    """Every object under `url`, recursively, as URLs of the same form (sidecars included)."""

    def operation(loc: _Location) -> list[str]:
        found = sorted(loc.fs.find(loc.path))
        if not found and loc.scheme != "file" and not _bucket_exists(loc):
            raise _missing_bucket(loc)
        return [loc.url_of(path) for path in found]

    return _run(url, operation)


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Endpoints and credentials for one block (as environment variables), restored after.

    The operator's commands talk to several buckets, each with its own endpoint and keys;
    this is how they hand them to the functions here, which read the environment.
    """
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
