"""The tubs trackday lets through, read by donkeycar's own Tub: what the trainer will do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from donkeycar.parts.tub_v2 import Tub

from tests.training.donkeycar.test_tub_hostile import _with_empty_catalog
from training.donkeycar.archive import create_archive, extract_archive
from training.donkeycar.sample_tub import write_sample_tub


def records(tub: Path) -> list[dict]:
    return list(Tub(str(tub), read_only=True))


def test_donkeycar_crashes_on_an_empty_catalog_and_reads_the_skip_bad_archive(tmp_path):
    tub = write_sample_tub(tmp_path / "data", records=20, seed=4)
    _with_empty_catalog(tub)
    with pytest.raises(ValueError, match="cannot mmap an empty file"):  # donkeycar issue #815
        records(tub)
    archive = tmp_path / "a.tar.zst"
    create_archive([tub], archive, skip_bad=True)
    with archive.open("rb") as f:
        extracted = extract_archive(f, tmp_path / "out")
    got = records(extracted.tubs[0])
    assert [r["_index"] for r in got] == list(range(20))
    assert json.loads((extracted.tubs[0] / "manifest.json").read_text().splitlines()[4])[
        "current_index"] == 20
