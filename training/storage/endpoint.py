"""Where object storage is and which keys open it: a typed record per scheme, passed to each
call (`endpoint=`), so that two buckets with different endpoints and keys can be used at once,
from any thread.

Defaults, as each cloud's SDK users expect (read from the process environment, never
written to it):
    S3     endpoint AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL (S3-compatible servers such as
           `rclone serve s3`; path-style addressing is used for them), else AWS itself. Keys
           AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, or AWS_PROFILE; none
           of them: botocore's own chain (the instance profile or task role in the cloud).
    GCS    STORAGE_EMULATOR_HOST points at an emulator (no credentials); otherwise
           GOOGLE_APPLICATION_CREDENTIALS, else application default credentials.
    Azure  AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with an account key
           or SAS token where one is set, else DefaultAzureCredential (managed identity,
           workload identity, `az login`; AZURE_CLIENT_ID picks a user-assigned identity).
"""

from __future__ import annotations

import os
import re
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class S3Endpoint:
    url: str | None = None  # None: AWS itself
    key_id: str | None = None
    secret: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    profile: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class GcsEndpoint:
    emulator_host: str | None = None  # an emulator's host:port or URL; no credentials then
    credentials_file: str | None = None  # a service account key file; None: ADC
    project: str | None = None


@dataclass(frozen=True)
class AzureEndpoint:
    connection_string: str | None = field(default=None, repr=False)
    account_name: str | None = None
    account_key: str | None = field(default=None, repr=False)
    sas_token: str | None = field(default=None, repr=False)
    client_id: str | None = None  # a user-assigned managed identity

    def configured(self) -> bool:
        return bool(self.connection_string or self.account_name)


@dataclass(frozen=True)
class Endpoint:
    """The settings each scheme's filesystem is built from; a URL's scheme picks its part."""

    s3: S3Endpoint = S3Endpoint()
    gs: GcsEndpoint = GcsEndpoint()
    az: AzureEndpoint = AzureEndpoint()

    @classmethod
    def from_env(cls, values: Mapping[str, str] | None = None) -> Endpoint:
        """From environment variables: `values` laid over the process environment (read now)."""
        env = ChainMap(dict(values or {}), os.environ)

        def get(*names: str) -> str | None:
            return next((env[name] for name in names if env.get(name)), None)

        return cls(
            s3=S3Endpoint(
                url=get("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
                key_id=get("AWS_ACCESS_KEY_ID"),
                secret=get("AWS_SECRET_ACCESS_KEY"),
                session_token=get("AWS_SESSION_TOKEN"),
                profile=get("AWS_PROFILE"),
                region=get("AWS_REGION", "AWS_DEFAULT_REGION"),
            ),
            gs=GcsEndpoint(
                emulator_host=get("STORAGE_EMULATOR_HOST"),
                credentials_file=get("GOOGLE_APPLICATION_CREDENTIALS"),
                project=get("GOOGLE_CLOUD_PROJECT"),
            ),
            az=AzureEndpoint(
                connection_string=get("AZURE_STORAGE_CONNECTION_STRING"),
                account_name=get("AZURE_STORAGE_ACCOUNT_NAME"),
                account_key=get("AZURE_STORAGE_ACCOUNT_KEY"),
                sas_token=get("AZURE_STORAGE_SAS_TOKEN"),
                client_id=get("AZURE_CLIENT_ID"),
            ),
        )

    def describe(self, scheme: str) -> str:
        """Where requests for `scheme` go, for error messages."""
        if scheme == "s3":
            return self.s3.url or "AWS S3"
        if scheme == "gs":
            return self.gs.emulator_host or "storage.googleapis.com"
        if scheme == "az":
            found = re.search(r"BlobEndpoint=([^;]+)", self.az.connection_string or "")
            if found:
                return found.group(1)
            account = self.az.account_name
            return f"{account}.blob.core.windows.net" if account else "Azure Blob storage"
        return "the local filesystem"


_BLOCK: ContextVar[Mapping[str, str] | None] = ContextVar("storage_environment", default=None)


def current(endpoint: Endpoint | None = None) -> Endpoint:
    """`endpoint`, else the innermost `environment()` block's, else the process environment's."""
    if endpoint is not None:
        return endpoint
    return Endpoint.from_env(_BLOCK.get())


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Endpoint variables for the calls in one block that pass no `endpoint=` (compatibility).

    Held in a context variable, not written to os.environ: a block in one thread does not
    change what another thread reaches. Blocks nest, the inner one's values winning.
    """
    token = _BLOCK.set({**(_BLOCK.get() or {}), **values})
    try:
        yield
    finally:
        _BLOCK.reset(token)


def in_this_block(fn: Callable[P, T]) -> Callable[P, T]:
    """`fn` bound to the caller's `environment()` block, for a worker thread: a thread starts
    with a fresh context, so without this a pool's tasks would reach the default endpoint."""
    values = _BLOCK.get()

    def bound(*args: P.args, **kwargs: P.kwargs) -> T:
        token = _BLOCK.set(values)
        try:
            return fn(*args, **kwargs)
        finally:
            _BLOCK.reset(token)

    return bound
