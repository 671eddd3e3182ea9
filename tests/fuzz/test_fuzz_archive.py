"""Fuzzing archive extraction and the archive manifest: ArchiveError or success, never out."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import tempfile
from pathlib import Path

import zstandard
from hypothesis import assume, given
from hypothesis import strategies as st

from tests.fuzz.strategies import hostile_names, json_values
from training.donkeycar.archive import ArchiveError, extract_archive
from training.donkeycar.archive_manifest import ARCHIVE_MANIFEST, parse_manifest
from training.donkeycar.untar import member_parts

TYPES = [
    tarfile.REGTYPE,
    tarfile.DIRTYPE,
    tarfile.SYMTYPE,
    tarfile.LNKTYPE,
    tarfile.FIFOTYPE,
    tarfile.CHRTYPE,
    tarfile.GNUTYPE_SPARSE,
    b"7",
    b"x",
]

members = st.lists(
    st.tuples(hostile_names, st.sampled_from(TYPES), st.binary(max_size=64), hostile_names),
    max_size=6,
)
manifests = json_values | st.fixed_dictionaries(
    {
        "format": st.just("trackday-tub-archive/1"),
        "tubs": st.dictionaries(hostile_names, st.integers(-2, 5), max_size=3),
        "payload_sha256": st.text("0123456789abcdef", min_size=64, max_size=64),
        "created": st.text(max_size=5),
    },
    optional={"skipped": json_values, "config_files": json_values, "skipped_catalogs": json_values},
)


def _tar(entries, manifest, tar_format) -> bytes | None:
    buffer = io.BytesIO()
    try:
        with tarfile.open(fileobj=buffer, mode="w", format=tar_format) as tar:
            for name, kind, data, link in entries:
                info = tarfile.TarInfo(name)
                info.type, info.linkname = kind, link
                info.size = len(data) if kind in (tarfile.REGTYPE, b"7", b"x") else 0
                tar.addfile(info, io.BytesIO(data) if info.size else None)
            if manifest is not None:
                text = json.dumps(manifest).encode()
                info = tarfile.TarInfo(ARCHIVE_MANIFEST)
                info.size = len(text)
                tar.addfile(info, io.BytesIO(text))
    except (ValueError, UnicodeError):
        return None  # a name tarfile itself cannot write
    return buffer.getvalue()


def _extract_inside(data: bytes) -> None:
    """Extract into root/work/out; nothing may appear anywhere else under root."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dest = root / "work" / "out"
        try:
            extracted = extract_archive(io.BytesIO(data), dest)
        except ArchiveError:
            extracted = None
        outside = [
            p
            for p in root.rglob("*")
            if not p.is_relative_to(dest) and p not in (root / "work", dest)
        ]
        assert outside == [], outside
        assert not any(p.is_symlink() for p in root.rglob("*"))
        if extracted is not None:
            for tub in extracted.tubs:
                assert tub.resolve().is_relative_to(dest.resolve())


@given(
    members,
    st.none() | manifests,
    st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]),
    st.sampled_from(["tar", "gz", "zst"]),
    st.integers(0, 2000),
)
def test_crafted_archives_are_refused_or_extracted_inside(
    entries, manifest, tar_format, compression, cut
):
    data = _tar(entries, manifest, tar_format)
    assume(data is not None)
    if compression == "gz":
        data = gzip.compress(data)
    elif compression == "zst":
        data = zstandard.ZstdCompressor().compress(data)
    if cut:
        data = data[:-cut]
    _extract_inside(data)


@given(st.sampled_from([b"", b"\x28\xb5\x2f\xfd", b"\x1f\x8b"]), st.binary(max_size=512))
def test_random_bytes_are_refused_cleanly(magic, rest):
    _extract_inside(magic + rest)


@given(st.binary(max_size=64) | manifests.map(lambda m: json.dumps(m).encode()))
def test_manifests_parse_or_are_refused(raw):
    try:
        parsed = parse_manifest(raw)
    except ArchiveError:
        return
    for name in parsed.tubs:
        assert "/" not in name and name not in (".", "..") and not name.startswith(".")
        assert isinstance(parsed.tubs[name], int)


@given(hostile_names)
def test_member_names_stay_inside(name):
    try:
        parts = member_parts(name)
    except ArchiveError:
        return
    assert ".." not in parts and "" not in parts and "." not in parts
    assert not name.startswith("/")
