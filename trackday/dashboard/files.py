"""A bucket object sent to the browser in pieces, with HTTP Range support.

Browsers fetch videos by ranges (seeking, and Chromium asks for the end of an MP4 whose index
is there); models are downloads. Each piece is a ranged read from the bucket, so a large file
never sits in memory whole. The filesystem object is taken while the stack's environment is in
force (stacks.reading) and keeps its endpoint and keys afterwards.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Iterator
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from training import storage

PIECE = 1 << 20
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def located(url: str):
    """The configured filesystem and path of `url`, with the object's size."""
    fs, path = storage.filesystem(url)
    return fs, path, int(fs.size(path))


def _pieces(fs, path: str, start: int, end: int) -> Iterator[bytes]:
    while start < end:
        stop = min(start + PIECE, end)
        yield fs.cat_file(path, start=start, end=stop)
        start = stop


def send(request: Request, fs, path: str, size: int, download: str | None = None) -> Response:
    """The object whole (200) or the asked range (206); 416 for a range beyond its end."""
    kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
    headers = {"Accept-Ranges": "bytes"}
    if download:
        # RFC 6266's encoded form: a name from the bucket cannot break the header.
        headers["Content-Disposition"] = f"attachment; filename*=utf-8''{quote(download)}"
    start, end, status = 0, size, 200
    wanted = _RANGE.match(request.headers.get("range", "").strip())
    if wanted and (wanted.group(1) or wanted.group(2)):
        first, last = wanted.groups()
        if first:
            start, end = int(first), min(size, int(last) + 1 if last else size)
        else:  # a suffix: the last N bytes
            start = max(0, size - int(last))
        if start >= end:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=kind)
    return StreamingResponse(
        _pieces(fs, path, start, end), status_code=status, headers=headers, media_type=kind
    )
