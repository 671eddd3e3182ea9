"""The training archive: checked tubs plus the car's config in one file (writing it).

Format: an uncompressed tar stream compressed with zstandard (`.tar.zst`). The images are
already JPEG, so spending CPU on deflate (as `tar czf` does) buys almost nothing; zstd at a
low level still squeezes the tar headers, padding and catalogs, so the archive comes out no
larger than the gzip one while packing several times faster (bench/archive.py measures
both). A tar stream, unlike a zip, can be extracted while it downloads.

Inside: `tubs/<name>/...` (each tub as donkeycar wrote it, bad records skipped by adding
them to the manifest's deleted indexes), `config/config.py` and `config/myconfig.py` when
given, and last `trackday-archive.json`: record counts, the payload's sha256, creation time,
trackday version. The payload hash covers every member's name, size and bytes in order.

Old archives (`tar czf` of one tub's contents plus config.py/myconfig.py at the root) are
still read (extract.py). The tar stream itself is written by tar_writer.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from training.donkeycar.archive_manifest import ARCHIVE_MANIFEST, CONFIG_FILES, ArchiveManifest
from training.donkeycar.extract import (
    ExtractedArchive,
    Progress,
    extract_archive,
    read_manifest,
)
from training.donkeycar.tar_writer import TarWriter
from training.donkeycar.tub import IMAGES, MANIFEST, TubProblem, TubScan, scan_tub
from training.donkeycar.untar import ArchiveError

# Reading an archive lives in extract.py; its callers find it here, beside the writing.
__all__ = [
    "ArchiveError",
    "ExtractedArchive",
    "TubsRejected",
    "create_archive",
    "extract_archive",
    "read_manifest",
    "refuse_problems",
]


class TubsRejected(ArchiveError):
    """Tubs with problems, listed one per line, and nothing written."""

    SHOWN = 50

    def __init__(self, problems: list[TubProblem], hint: str) -> None:
        self.problems = problems
        listed = "\n".join(f"  {p}" for p in problems[: self.SHOWN])
        if len(problems) > self.SHOWN:
            listed += f"\n  ... and {len(problems) - self.SHOWN} more"
        super().__init__(f"{len(problems)} problem(s) in the tubs:\n{listed}\n{hint}")


def _unique_names(tubs: list[Path]) -> list[str]:
    names: list[str] = []
    for tub in tubs:
        base = tub.resolve().name or "tub"
        name, n = base, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.append(name)
    return names


def _tub_files(scan: TubScan, skip_bad: bool) -> list[tuple[str, bytes]]:
    """The tub's own files (manifest, catalogs) as they go into the archive."""
    skipped = scan.bad_indexes if skip_bad else set()
    files = [(MANIFEST, scan.manifest_with_deleted(skipped))]
    for catalog in scan.kept_catalogs:
        manifest = Path(catalog).with_suffix(".catalog_manifest").name
        files.append((catalog, (scan.path / catalog).read_bytes()))
        files.append((manifest, (scan.path / manifest).read_bytes()))
    return files


def create_archive(
    tubs: list[Path],
    output: Path,
    config_dir: Path | None = None,
    skip_bad: bool = False,
    progress: Progress | None = None,
) -> ArchiveManifest:
    """Check the tubs and pack them with the car's config into `output`, in one read of each file.

    Packing goes to a `.partial` file renamed at the end, so a refused or interrupted run
    leaves nothing at `output`. `progress` is called with the number of records checked
    since its last call.
    """
    if config_dir and not config_dir.is_dir():
        raise ArchiveError(f"--config-dir {config_dir} is not a folder")
    config_files = [
        config_dir / n for n in CONFIG_FILES if config_dir and (config_dir / n).is_file()
    ]
    names = _unique_names(tubs)
    partial = output.with_name(output.name + ".partial")
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        with partial.open("wb") as raw, TarWriter(raw) as writer:
            scans = [
                _pack_tub(writer, name, tub, progress)
                for name, tub in zip(names, tubs, strict=True)
            ]
            refuse_problems(scans, skip_bad)
            for name, scan in zip(names, scans, strict=True):
                for rel, data in _tub_files(scan, skip_bad):
                    writer.add(f"tubs/{name}/{rel}", data)
            for path in config_files:
                writer.add(f"config/{path.name}", path.read_bytes())
            manifest = ArchiveManifest(
                tubs={n: len(s.records) for n, s in zip(names, scans, strict=True)},
                skipped={
                    n: len(s.bad_indexes)
                    for n, s in zip(names, scans, strict=True)
                    if s.bad_indexes
                },
                skipped_catalogs={
                    n: s.empty_catalogs
                    for n, s in zip(names, scans, strict=True)
                    if s.empty_catalogs
                },
                payload_sha256=writer.payload_sha256(),
                created=datetime.now(UTC).isoformat(timespec="seconds"),
                config_files=[p.name for p in config_files],
            )
            writer.add(ARCHIVE_MANIFEST, manifest.to_json().encode(), hashed=False)
            writer.close()
        partial.replace(output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return manifest


def _pack_tub(writer: TarWriter, name: str, tub: Path, progress: Progress | None) -> TubScan:
    count = 0

    def pack(image: str, data: bytes) -> None:
        nonlocal count
        writer.add(f"tubs/{name}/{IMAGES}/{image}", data)
        count += 1
        if progress and count % 256 == 0:
            progress(256)

    scan = scan_tub(tub, sink=pack)
    if progress:
        progress(count % 256)
    return scan


def refuse_problems(scans: list[TubScan], skip_bad: bool) -> None:
    """Raise TubsRejected unless every tub is usable (after skipping bad records, if allowed)."""
    problems = [p for s in scans for p in s.problems]
    fatal = [p for s in scans for p in s.fatal]
    if fatal or (problems and not skip_bad):
        hint = (
            "Fix or remove these tubs."
            if fatal
            else "Fix the records, or pass --skip-bad to leave them out of the archive."
        )
        raise TubsRejected(problems, hint)
    if not any(s.records for s in scans):
        raise ArchiveError("no good records left in the tubs: nothing to train on")
