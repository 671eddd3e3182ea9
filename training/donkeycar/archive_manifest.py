"""`trackday-archive.json`: what an archive records about itself, and its schema.

The manifest travels inside the archive, so it is as untrusted as the archive: every field
is checked against the schema below before anything is built from it, and tub names must
be plain folder names, because the trainer joins them to its work folder (and, with
--skip-bad, rewrites the `manifest.json` it finds there).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from training.donkeycar.untar import ArchiveError

ARCHIVE_MANIFEST = "trackday-archive.json"
FORMAT = "trackday-tub-archive/1"
CONFIG_FILES = ("config.py", "myconfig.py")
TRACKDAY_VERSION = "0.1.0"
MAX_MANIFEST_BYTES = 1 << 20
MAX_TUBS = 10_000
_TUB_NAME = re.compile(r"[^./\\\0][^/\\\0]{0,254}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass
class ArchiveManifest:
    """What `trackday-archive.json` records about an archive."""

    tubs: dict[str, int]
    payload_sha256: str
    created: str
    trackday_version: str = TRACKDAY_VERSION
    skipped: dict[str, int] = field(default_factory=dict)
    config_files: list[str] = field(default_factory=list)
    format: str = FORMAT
    skipped_catalogs: dict[str, list[str]] = field(default_factory=dict)  # empty ones

    @property
    def records(self) -> int:
        return sum(self.tubs.values())

    def to_json(self) -> str:
        fields = {k: v for k, v in self.__dict__.items() if v or k != "skipped_catalogs"}
        return json.dumps(fields, indent=2)


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 40


def _short_text(value: object) -> bool:
    return isinstance(value, str) and len(value) <= 100


def _tub_table(value: object) -> bool:
    return (
        isinstance(value, dict)
        and 0 < len(value) <= MAX_TUBS
        and all(_TUB_NAME.fullmatch(k) and _count(v) for k, v in value.items())
    )


# field: (check, what it must be, required)
_SCHEMA: dict[str, tuple[Callable[[object], bool], str, bool]] = {
    "format": (lambda v: v == FORMAT, f"the string {FORMAT!r}", True),
    "tubs": (_tub_table, "a table of plain folder names to record counts", True),
    "payload_sha256": (
        lambda v: isinstance(v, str) and bool(_SHA256.fullmatch(v)),
        "64 hex digits",
        True,
    ),
    "created": (_short_text, "a time stamp", True),
    "trackday_version": (_short_text, "a version string", False),
    "skipped": (
        lambda v: isinstance(v, dict) and all(_count(n) for n in v.values()),
        "a table of tub names to counts",
        False,
    ),
    "skipped_catalogs": (
        lambda v: (
            isinstance(v, dict)
            and all(isinstance(n, list) and all(isinstance(c, str) for c in n) for n in v.values())
        ),
        "a table of tub names to catalog names",
        False,
    ),
    "config_files": (
        lambda v: (
            isinstance(v, list) and all(n in CONFIG_FILES for n in v) and len(set(v)) == len(v)
        ),
        f"a list of {' and '.join(CONFIG_FILES)}",
        False,
    ),
}


def parse_manifest(data: bytes) -> ArchiveManifest:
    """The manifest from its bytes, or ArchiveError naming the first field that is wrong."""
    where = f"{ARCHIVE_MANIFEST} in the archive"
    if len(data) > MAX_MANIFEST_BYTES:
        raise ArchiveError(f"{where} is over {MAX_MANIFEST_BYTES} bytes; archive the tubs again")
    try:
        fields = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise ArchiveError(f"{where} is unreadable ({type(exc).__name__}); archive again") from None
    if not isinstance(fields, dict):
        raise ArchiveError(f"{where} is a JSON {type(fields).__name__}, not an object")
    if fields.get("format") != FORMAT:
        raise ArchiveError(f"unsupported archive format {str(fields.get('format'))[:60]!r}")
    unknown = sorted(set(fields) - set(_SCHEMA))
    if unknown:
        raise ArchiveError(f"{where} has unknown fields {unknown[:5]}")
    for name, (check, wanted, required) in _SCHEMA.items():
        if name not in fields:
            if required:
                raise ArchiveError(f"{where} lacks {name!r}")
        elif not check(fields[name]):
            raise ArchiveError(f"{where}: {name!r} is not {wanted}")
    if not set(fields.get("skipped", {})) <= set(fields["tubs"]):
        raise ArchiveError(f"{where}: 'skipped' names tubs that 'tubs' does not list")
    return ArchiveManifest(**fields)
