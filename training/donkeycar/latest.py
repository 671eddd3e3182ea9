"""`<output>/latest.json`: which complete run `fetch latest` gets.

Two runs may finish into the same output in any order; the one that started last must
win, whatever finished last, and a reader must never see a half-written file. Local
folders (and file:// URLs) are written through a temporary file renamed over the old one
(rename is atomic within a folder), under an exclusive lock so that the compare and the
write are one step. An object store's PUT replaces an object whole; there the compare
and the write are two steps, so two runs ending in the same second can still race.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
from datetime import datetime
from pathlib import Path

from training import storage

LATEST = "latest.json"

log = logging.getLogger("trackday.train")


def _started(text: str | None) -> datetime | None:
    """The start time in a latest.json, or None when there is none or it is unreadable."""
    if text is None:
        return None
    try:
        started = datetime.fromisoformat(json.loads(text)["started"])
    except (ValueError, KeyError, TypeError):
        return None  # an unreadable or older-format latest.json is replaced
    return started if started.tzinfo is not None else None


def _local_path(url: str) -> Path | None:
    if url.startswith("file://"):
        return Path(url.removeprefix("file://"))
    return None if "://" in url else Path(url)


def publish(output_url: str, entry: dict[str, str]) -> bool:
    """Make `entry` (with an ISO `started`) the latest run unless a later-started run is.

    Returns whether it was written.
    """
    text = json.dumps(entry)
    started = datetime.fromisoformat(entry["started"])
    local = _local_path(output_url)
    if local is None:
        url = storage.join(output_url, LATEST)
        current = storage.read_text(url) if storage.exists(url) else None
        if _newer(current, started):
            return False
        storage.write_text(url, text)
        return True
    local.mkdir(parents=True, exist_ok=True)
    with open(local / f".{LATEST}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = local / LATEST
        current = path.read_text() if path.exists() else None
        if _newer(current, started):
            return False
        fd, tmp = tempfile.mkstemp(dir=local, prefix=f".{LATEST}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    return True


def _newer(current: str | None, started: datetime) -> bool:
    """Whether `current` names a run that started after `started` (and so stays latest)."""
    theirs = _started(current)
    if theirs is not None and theirs > started:
        log.info("%s names a run started later (%s): left as it is", LATEST, theirs.isoformat())
        return True
    return False
