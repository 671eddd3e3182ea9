"""fsspec filesystems (s3fs, gcsfs, adlfs, local) built from an Endpoint record, one client per
scheme and settings, and the Site: a parsed URL with the endpoint and filesystem serving it.

Every setting reaches the client as an argument: an SDK reads the process environment only
for what the record leaves empty (its own credential chain).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from functools import cached_property

import fsspec
from fsspec.implementations.local import LocalFileSystem

from training.storage.endpoint import (
    AzureEndpoint,
    Endpoint,
    GcsEndpoint,
    S3Endpoint,
    current,
)
from training.storage.errors import StorageError
from training.storage.urls import Location, locate

CONNECT_TIMEOUT_S = 5  # an endpoint that drops packets fails within the retry bound too
READ_TIMEOUT_S = 60  # a stalled transfer counts as transient and is retried
_GCS_SCOPE = "https://www.googleapis.com/auth/devstorage.full_control"
_COMMON = {"skip_instance_cache": True, "use_listings_cache": False}  # objects change under us


@dataclass(frozen=True)
class Site:
    """A URL, the endpoint that serves it, and (built on first use) its filesystem."""

    loc: Location
    endpoint: Endpoint

    @property
    def url(self) -> str:
        return self.loc.url

    @property
    def path(self) -> str:
        return self.loc.path

    @cached_property
    def fs(self) -> fsspec.AbstractFileSystem:
        if self.loc.scheme == "az" and not self.endpoint.az.configured():
            raise StorageError(
                f"{self.url}: no Azure storage account configured; set "
                "AZURE_STORAGE_ACCOUNT_NAME (with a managed identity or `az login`) "
                "or AZURE_STORAGE_CONNECTION_STRING"
            )
        return filesystem(self.loc.scheme, self.endpoint)

    def sidecar(self) -> Site:
        return Site(self.loc.sidecar(), self.endpoint)


def site(url: str, endpoint: Endpoint | None = None) -> Site:
    """Parse `url` and pick its endpoint (`endpoint`, else the default)."""
    return Site(locate(url), current(endpoint))


def filesystem(scheme: str, endpoint: Endpoint) -> fsspec.AbstractFileSystem:
    """The client for `scheme` under `endpoint`'s settings."""
    if scheme == "s3":
        return _s3(endpoint.s3)
    if scheme == "gs":
        return _gcs(endpoint.gs)
    if scheme == "az":
        return _azure(endpoint.az)
    return LocalFileSystem(auto_mkdir=True)


@functools.lru_cache(maxsize=16)
def _s3(settings: S3Endpoint) -> fsspec.AbstractFileSystem:
    import s3fs

    config: dict = {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "read_timeout": READ_TIMEOUT_S,
        "retries": {"max_attempts": 2, "mode": "standard"},
        "ignore_configured_endpoint_urls": True,  # the record's endpoint, not AWS_ENDPOINT_URL*
    }
    if settings.url:
        # S3-compatible servers expect path-style URLs, and some (rclone among them) send
        # a whole-object CRC with ranged reads, which botocore's default check rejects;
        # our sha256 covers the content end to end anyway.
        config["s3"] = {"addressing_style": "path"}
        config["request_checksum_calculation"] = "when_required"
        config["response_checksum_validation"] = "when_required"
    return s3fs.S3FileSystem(
        endpoint_url=settings.url,
        key=settings.key_id,
        secret=settings.secret,
        token=settings.session_token,
        profile=settings.profile,
        client_kwargs={"region_name": settings.region} if settings.region else {},
        config_kwargs=config,
        **_COMMON,
    )


@functools.lru_cache(maxsize=16)
def _gcs(settings: GcsEndpoint) -> fsspec.AbstractFileSystem:
    import aiohttp

    host = settings.emulator_host
    if host and "://" not in host:
        host = f"http://{host}"
    options: dict = {"project": settings.project} if settings.project else {}
    timeout = aiohttp.ClientTimeout(sock_connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S)
    return _gcs_class()(
        token="anon" if host else _gcs_credentials(settings.credentials_file),
        endpoint_url=host,
        requests_timeout=timeout,
        **options,
        **_COMMON,
    )


def _gcs_credentials(path: str | None) -> object:
    """The key file's credentials, loaded as application default credentials load the file
    GOOGLE_APPLICATION_CREDENTIALS names (any type: service account, user, workload identity
    federation; gcsfs would read a path as a service account or a raw token). None: ADC.

    google-auth marks this generic loader deprecated for files from untrusted sources and
    silences that warning for its own GOOGLE_APPLICATION_CREDENTIALS load
    (google/auth/_default.py, _get_explicit_environ_credentials); the file here is the
    operator's own in the same way.
    """
    if not path:
        return None
    import google.auth

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        credentials, _ = google.auth.load_credentials_from_file(path, scopes=[_GCS_SCOPE])
    return credentials


@functools.lru_cache(maxsize=16)
def _azure(settings: AzureEndpoint) -> fsspec.AbstractFileSystem:
    return _azure_class()(settings, **_COMMON)


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
        """adlfs connected by our settings alone, with the Azure SDK's retries cut short (it
        backs off 15 s and more). adlfs fills what it is not given from AZURE_STORAGE_*
        variables; do_connect uses the record instead."""

        def __init__(self, settings: AzureEndpoint, **kwargs: object) -> None:
            self._settings = settings
            super().__init__(
                account_name=settings.account_name,
                connection_string=settings.connection_string,
                account_key=settings.account_key,
                sas_token=settings.sas_token,
                anon=False,
                **kwargs,
            )

        def _get_default_azure_credential(self, **kwargs: object) -> tuple:
            if self._settings.client_id:
                kwargs["managed_identity_client_id"] = self._settings.client_id
            return super()._get_default_azure_credential(**kwargs)

        def do_connect(self) -> None:
            settings = self._settings
            policy = ExponentialRetry(
                initial_backoff=0.5, increment_base=1.5, retry_total=2, random_jitter_range=0.5
            )
            options = {
                "retry_policy": policy,
                "connection_timeout": CONNECT_TIMEOUT_S,
                "read_timeout": READ_TIMEOUT_S,
            }
            if settings.connection_string:
                self.service_client = BlobServiceClient.from_connection_string(
                    settings.connection_string, **options
                )
                return
            credential = settings.account_key or settings.sas_token or self.credential
            if credential is None:  # adlfs took a connection string from its environment
                self.credential, self.sync_credential = self._get_default_azure_credential()
                credential = self.credential
            url = f"https://{settings.account_name}.blob.core.windows.net"
            self.service_client = BlobServiceClient(url, credential=credential, **options)

    return _Fs
