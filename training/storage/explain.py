"""Whatever an SDK raised, turned into one StorageError line: the URL, what went wrong, how
to fix it. Separate from errors.py because telling a missing bucket from a missing object
asks the filesystem."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from training.storage.endpoint import Endpoint
from training.storage.errors import (
    RETRY_SECONDS,
    StorageError,
    chain,
    error_code,
    is_transient,
    is_unreachable,
    retrying,
    status,
)
from training.storage.filesystems import Site, site
from training.storage.urls import BUCKET_WORD

T = TypeVar("T")

CREDENTIAL_HINT = {
    "s3": "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or the instance profile's policy)",
    "gs": "check GOOGLE_APPLICATION_CREDENTIALS (or the service account's roles on the bucket)",
    "az": "check AZURE_STORAGE_CONNECTION_STRING (or the managed identity's role on the account)",
    "file": "check the file's permissions",
}
_DENIED_CODES = {
    "AuthorizationFailure",
    "AuthenticationFailed",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
}


def _one_line(text: object) -> str:
    first = next((line.strip() for line in str(text).splitlines() if line.strip()), "")
    return first[:300]


def bucket_exists(where: Site) -> bool:
    """Whether the URL's bucket/container exists; True when unsure."""
    try:
        return bool(where.fs.exists(where.loc.bucket))
    except Exception:
        return True


def missing_bucket(where: Site) -> StorageError:
    loc = where.loc
    return StorageError(
        f"{loc.url}: {BUCKET_WORD[loc.scheme]} {loc.bucket!r} does not exist; "
        "create it or fix the URL"
    )


def explain(where: Site, exc: BaseException) -> StorageError:
    """Turn whatever an SDK raised into one line: the URL, what went wrong, how to fix it."""
    url, scheme = where.url, where.loc.scheme
    links = list(chain(exc))
    names = {cls.__name__ for link in links for cls in type(link).__mro__}
    statuses = {status(link) for link in links}
    codes = {error_code(link) for link in links}
    if names & {"NoCredentialsError", "CredentialUnavailableError", "DefaultCredentialsError"}:
        return StorageError(
            f"{url}: no credentials found for {scheme}://; {CREDENTIAL_HINT[scheme]}"
        )
    if (
        any(isinstance(link, PermissionError) for link in links)
        or statuses & {401, 403}
        or codes & _DENIED_CODES
        or "ClientAuthenticationError" in names
        or any(str(link).startswith("Forbidden") for link in links)
    ):
        return StorageError(
            f"{url}: access denied (credentials rejected or not allowed); {CREDENTIAL_HINT[scheme]}"
        )
    reason = _one_line(exc) or type(exc).__name__
    endpoint = where.endpoint.describe(scheme)
    if any(is_unreachable(link) for link in links):
        return StorageError(
            f"{url}: cannot reach {endpoint} ({reason}); "
            "check that the server is running and the endpoint is right"
        )
    if is_transient(exc):
        return StorageError(
            f"{url}: {endpoint} kept failing for {RETRY_SECONDS:.0f} s ({reason}); try again later"
        )
    if (
        any(isinstance(link, FileNotFoundError) for link in links)
        or "ResourceNotFoundError" in names
        or statuses & {404}
    ):
        if scheme == "file":
            return StorageError(f"{url}: no such file; check the path")
        if not bucket_exists(where):
            return missing_bucket(where)
        return StorageError(f"{url}: no such object; check the URL (list its prefix to see)")
    return StorageError(f"{url}: {type(exc).__name__}: {reason}")


@contextmanager
def explained(where: Site) -> Iterator[None]:
    """Let StorageError through, turn anything else an SDK raises into one."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        raise explain(where, exc) from exc


def run(url: str, endpoint: Endpoint | None, operation: Callable[[Site], T]) -> T:
    """Run a small operation, retried whole on transient errors, its failures explained."""
    where = site(url, endpoint)
    with explained(where):
        return retrying(lambda: operation(where))
