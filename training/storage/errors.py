"""What went wrong, and whether to try again: the one error type, the classification of
whatever an SDK raised (transient, unreachable, HTTP status, error code), and the retry loop.

The retry bound, stated once: transient failures are retried with exponential backoff and no
new attempt starts after RETRY_SECONDS (8 s); the attempt under way still runs to its end (a
refused connection ends at once, an endpoint that drops packets after the filesystem's
connect timeout).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import tenacity

RETRY_SECONDS = 8.0

T = TypeVar("T")


class StorageError(Exception):
    """A storage operation failed; str() is one line: the URL, what went wrong, how to fix it."""


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


def chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and its causes/contexts, each once."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def status(exc: BaseException) -> int | None:
    """The HTTP status an SDK exception carries, whichever SDK raised it."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        return response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    for attribute in ("status_code", "status", "code"):
        value = getattr(exc, attribute, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    return None


def error_code(exc: BaseException) -> str:
    """The service's error code (S3's "AccessDenied", Azure's "AuthenticationFailed"), or ""."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return str(getattr(exc, "error_code", "") or "")


def is_unreachable(exc: BaseException) -> bool:
    return any(cls.__name__ in _UNREACHABLE_TYPES for cls in type(exc).__mro__)


def is_transient(exc: BaseException) -> bool:
    """Worth another try: the network or the service hiccupped, not the request."""
    for link in chain(exc):
        if isinstance(link, StorageError):
            return False
        names = {cls.__name__ for cls in type(link).__mro__}
        if names & _TRANSIENT_TYPES:
            return True
        code = status(link)
        if code is not None and (code >= 500 or code == 429):
            return True
        if error_code(link) in _THROTTLED:
            return True
    return False


def retrying(operation: Callable[[], T]) -> T:
    """Run `operation`, retrying transient failures with exponential backoff for a bounded time."""
    retryer = tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_transient),
        stop=tenacity.stop_after_delay(RETRY_SECONDS),
        wait=tenacity.wait_exponential(multiplier=0.25, max=4),
        reraise=True,
    )
    return retryer(operation)
