"""Fuzzing tub reading and packing: scan_tub never raises, packing never reads outside."""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.strategies import hostile_names, json_values
from training.donkeycar.archive import ArchiveError, create_archive, extract_archive
from training.donkeycar.tub import scan_tub

SECRET = b"aws_secret_access_key=planted"
JPEG = b"\xff\xd8" + b"\x00" * 20 + b"\xff\xd9"

records = (
    st.fixed_dictionaries(
        {
            "cam/image_array": st.sampled_from(["0.jpg", "1.jpg", "../secret.jpg", "", ".x"])
            | st.text(max_size=8),
            "user/angle": st.floats() | json_values,
            "user/throttle": st.floats(-1, 1),
        },
    )
    | json_values
)
catalog_lines = st.lists(records.map(json.dumps) | st.text(max_size=30), max_size=8)
meta = (
    st.fixed_dictionaries(
        {
            "paths": st.lists(
                st.sampled_from(["catalog_0.catalog", "../secret.catalog", "/etc/passwd"])
                | hostile_names,
                max_size=3,
            ),
            "deleted_indexes": st.lists(st.integers(-2, 10), max_size=3) | json_values,
            "current_index": st.integers(0, 10),
        }
    )
    | json_values
)


@given(catalog_lines, meta, st.booleans(), st.booleans(), st.lists(json_values, max_size=6))
def test_fuzzed_tubs_scan_and_pack_without_leaking(
    lines, catalog_meta, empty_catalog, skip_bad, head
):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "secret.catalog").write_bytes(SECRET)
        (root / "secret.jpg").write_bytes(JPEG + SECRET)
        tub = root / "tub"
        (tub / "images").mkdir(parents=True)
        for name in ("0.jpg", "1.jpg"):
            (tub / "images" / name).write_bytes(JPEG)
        manifest = [json.dumps(v) for v in head[:4]] + [json.dumps(catalog_meta)]
        (tub / "manifest.json").write_text("\n".join(manifest) + "\n")
        (tub / "catalog_0.catalog").write_text("" if empty_catalog else "\n".join(lines))
        (tub / "catalog_0.catalog_manifest").write_text("{}\n")
        scan_tub(tub)  # must not raise, whatever the files hold
        archive = root / "a.tar.zst"
        try:
            create_archive([tub], archive, skip_bad=skip_bad)
        except ArchiveError:
            assert not archive.exists()
            return
        with archive.open("rb") as f:
            data = f.read()
            extracted = extract_archive(io.BytesIO(data), root / "out")
        packed = b"".join(p.read_bytes() for p in (root / "out").rglob("*") if p.is_file())
        assert SECRET not in packed
        assert extracted.manifest is not None and extracted.manifest.records > 0
