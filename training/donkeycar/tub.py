"""Reading and checking donkeycar Tub v2 folders without importing donkeycar.

A tub recorded on the car can be damaged in ordinary ways (the car lost power mid-write,
a file was deleted by hand). Finding that on the laptop is cheap; finding it after a GPU
job has started is not. The layout is donkeycar's `datastore_v2`: `manifest.json` (five
JSON lines: inputs, types, metadata, manifest metadata, catalog metadata), catalogs of one
JSON record per line with a `.catalog_manifest` each, and `images/`.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REQUIRED_KEYS = ("cam/image_array", "user/angle", "user/throttle")
MANIFEST = "manifest.json"
IMAGES = "images"

ImageSink = Callable[[str, bytes], None] | None


@dataclass(frozen=True)
class TubProblem:
    """One thing wrong with a tub; `index` is None when the tub as a whole is unusable."""

    tub: Path
    index: int | None
    reason: str
    skippable: bool = False  # a whole-tub problem that --skip-bad repairs by leaving a file out

    def __str__(self) -> str:
        where = f"record {self.index}" if self.index is not None else "tub"
        return f"{self.tub}: {where}: {self.reason}"


@dataclass
class TubScan:
    """What a tub holds: good records (with their image files) and the problems found."""

    path: Path
    manifest_lines: list[str] = field(default_factory=list)
    catalogs: list[str] = field(default_factory=list)
    deleted: set[int] = field(default_factory=set)
    empty_catalogs: list[str] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    problems: list[TubProblem] = field(default_factory=list)

    @property
    def fatal(self) -> list[TubProblem]:
        """Problems that no skipping can repair: the tub itself is unreadable or empty."""
        return [p for p in self.problems if p.index is None and not p.skippable]

    @property
    def bad_indexes(self) -> set[int]:
        return {p.index for p in self.problems if p.index is not None}

    @property
    def kept_catalogs(self) -> list[str]:
        """The catalogs that go to training: an empty one would crash donkeycar."""
        return [c for c in self.catalogs if c not in self.empty_catalogs]

    @property
    def needs_rewrite(self) -> bool:
        """Whether skipping bad data changes manifest.json."""
        return bool(self.bad_indexes or self.empty_catalogs)

    def manifest_with_deleted(self, extra: set[int]) -> bytes:
        """manifest.json with `extra` added to the deleted indexes and empty catalogs left out.

        An empty catalog holds no lines, so leaving it out moves no record's index
        (donkeycar numbers records by counting lines through the catalogs in order).
        """
        lines = list(self.manifest_lines)
        catalog_meta = json.loads(lines[4])
        catalog_meta["deleted_indexes"] = sorted(self.deleted | extra)
        catalog_meta["paths"] = self.kept_catalogs
        lines[4] = json.dumps(catalog_meta)
        return ("\n".join(lines) + "\n").encode()


def image_problem(data: bytes) -> str | None:
    """Why these image bytes are unusable, or None when the image is whole.

    Only the markers are checked: a JPEG cut short by a power loss has no end-of-image
    marker, a PNG none of its IEND chunk. Decoding every image would make checking a
    13,000-record tub slower than packing it.
    """
    if not data:
        return "image file is empty"
    tail = data[-16:].rstrip(b"\x00")
    if data.startswith(b"\xff\xd8"):
        return None if tail.endswith(b"\xff\xd9") else "JPEG image is truncated (no end marker)"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None if tail.endswith(b"IEND\xaeB`\x82") else "PNG image is truncated (no IEND)"
    return "image is neither JPEG nor PNG"


def read_file(path: str) -> bytes:
    """A whole small file in two system calls; `open().read()` costs twice as much per image.

    A symbolic link is not followed (OSError ELOOP): the caller decides whether its
    target is inside the tub.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        return os.read(fd, os.fstat(fd).st_size + 1)
    finally:
        os.close(fd)


_NOT_JSON = object()


def _parse_line(line: str) -> object:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return _NOT_JSON


def _catalog_records(path: Path) -> list[object]:
    """Each non-empty catalog line parsed, `_NOT_JSON` where a line does not parse.

    The whole catalog is parsed in one call when every line is whole (the usual case):
    a third of the cost of a call per line. Lines that merge or split under the join
    change the count, which sends the catalog to the line-by-line path.
    """
    text = path.read_bytes().decode("utf-8", errors="replace")
    lines = [line.rstrip("\r") for line in text.split("\n") if line.strip()]
    try:
        records = json.loads("[" + ",".join(lines) + "]")
        if len(records) == len(lines):
            return records
    except json.JSONDecodeError:
        pass
    return [_parse_line(line) for line in lines]


def _inside(scan: TubScan, path: Path | str) -> bool:
    return Path(path).resolve().is_relative_to(scan.path.resolve())


def _read_image(scan: TubScan, path: str) -> bytes:
    """An image's bytes, following a symbolic link only when it stays in the tub."""
    try:
        return read_file(path)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
    if not _inside(scan, path):
        raise OSError(errno.EPERM, "a symbolic link out of the tub")
    with open(path, "rb") as f:
        return f.read()


def _check_record(
    scan: TubScan, index: int, record: object, images_dir: str, sink: ImageSink
) -> None:
    if record is _NOT_JSON:
        scan.problems.append(TubProblem(scan.path, index, "catalog line does not parse as JSON"))
        return
    if not isinstance(record, dict):
        scan.problems.append(TubProblem(scan.path, index, "catalog line is not a JSON object"))
        return
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        scan.problems.append(TubProblem(scan.path, index, f"missing {', '.join(missing)}"))
        return
    for key in ("user/angle", "user/throttle"):
        value = record[key]
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
        ):
            scan.problems.append(TubProblem(scan.path, index, f"{key} is not a finite number"))
            return
    image = record["cam/image_array"]
    if not isinstance(image, str) or not image or "/" in image or image.startswith("."):
        scan.problems.append(TubProblem(scan.path, index, "cam/image_array is not a file name"))
        return
    try:
        data = _read_image(scan, os.path.join(images_dir, image))
    except FileNotFoundError:
        scan.problems.append(TubProblem(scan.path, index, f"image file missing: {IMAGES}/{image}"))
        return
    except OSError as exc:
        reason = f"image unreadable ({exc.strerror}): {IMAGES}/{image}"
        scan.problems.append(TubProblem(scan.path, index, reason))
        return
    reason = image_problem(data)
    if reason:
        scan.problems.append(TubProblem(scan.path, index, f"{reason}: {IMAGES}/{image}"))
        return
    scan.records.append(record)
    if sink:
        sink(image, data)


_CATALOG_NAME = re.compile(r"[^./\\][^/\\]*\.catalog")


def _unsafe_files(scan: TubScan) -> str | None:
    """Why the catalogs or images folder the manifest names would lead out of the tub."""
    for name in scan.catalogs:
        if not isinstance(name, str) or not _CATALOG_NAME.fullmatch(name):
            return f"{MANIFEST} lists {name!r} as a catalog: not a catalog file name in the tub"
        for file in (name, str(Path(name).with_suffix(".catalog_manifest"))):
            if not _inside(scan, scan.path / file):
                return f"{file} is a link out of the tub; copy the file itself into the tub"
    if not _inside(scan, scan.path / IMAGES):
        return f"{IMAGES} is a link out of the tub; copy the folder itself into the tub"
    return None


def scan_tub(path: Path, sink: ImageSink = None) -> TubScan:
    """Read every catalog line of the tub at `path` and check each non-deleted record.

    Each good record's image is read once and handed to `sink` (file name, bytes), so
    packing an archive needs no second read.
    """
    scan = TubScan(path=path)
    if not path.is_dir():
        scan.problems.append(TubProblem(path, None, "not a folder"))
        return scan
    if not _inside(scan, path / MANIFEST):
        scan.problems.append(TubProblem(path, None, f"{MANIFEST} is a link out of the tub"))
        return scan
    try:
        scan.manifest_lines = (path / MANIFEST).read_text().splitlines()
        catalog_meta = json.loads(scan.manifest_lines[4])
        scan.catalogs = list(catalog_meta["paths"])
        scan.deleted = {int(i) for i in catalog_meta["deleted_indexes"]}
    except FileNotFoundError:
        scan.problems.append(TubProblem(path, None, f"{MANIFEST} is missing: is this a Tub v2?"))
        return scan
    except (OSError, ValueError, IndexError, KeyError, TypeError) as exc:
        reason = f"{MANIFEST} is unreadable ({type(exc).__name__}: {exc})"
        scan.problems.append(TubProblem(path, None, reason))
        return scan
    unsafe = _unsafe_files(scan)
    if unsafe:
        scan.problems.append(TubProblem(path, None, unsafe))
        return scan
    index = 0
    images_dir = str(path / IMAGES)
    for name in scan.catalogs:
        catalog = path / name
        catalog_manifest = catalog.with_suffix(".catalog_manifest")
        if catalog.is_file() and catalog.stat().st_size == 0:
            reason = f"{name} is empty: donkeycar cannot read it (leave it out with --skip-bad)"
            scan.problems.append(TubProblem(path, None, reason, skippable=True))
            scan.empty_catalogs.append(name)
            continue
        if not catalog.is_file() or not catalog_manifest.is_file():
            missing = catalog.name if not catalog.is_file() else catalog_manifest.name
            scan.problems.append(
                TubProblem(path, None, f"{missing} listed in {MANIFEST} is missing")
            )
            return scan
        for record in _catalog_records(catalog):
            if index not in scan.deleted:
                _check_record(scan, index, record, images_dir, sink)
            index += 1
    if not scan.records and all(p.skippable for p in scan.problems):
        scan.problems.append(TubProblem(path, None, "tub has no records to train on"))
    return scan
