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
    opened = Tub(str(tub), read_only=True)
    try:
        return list(opened)
    finally:
        opened.close()


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
    assert (
        json.loads((extracted.tubs[0] / "manifest.json").read_text().splitlines()[4])[
            "current_index"
        ]
        == 20
    )


def test_an_archive_of_the_old_scripts_extracts_to_a_tub_donkeycar_reads(tmp_path):
    """Issue 9: `tar -chf ... -C data .`, `tar -rf` of the configs, gzip, as the seed did."""
    from tests.training.donkeycar.test_archive_hostile import seed_script_archive

    tub = write_sample_tub(tmp_path / "data", records=15, seed=5)
    car = tmp_path / "car"
    car.mkdir()
    (car / "config.py").write_text("MAX_EPOCHS = 1\n")
    (car / "myconfig.py").write_text("BATCH_SIZE = 4\n")
    archive = seed_script_archive(tub, car, tmp_path)
    with archive.open("rb") as f:
        extracted = extract_archive(f, tmp_path / "out")
    assert [r["_index"] for r in records(extracted.tubs[0])] == list(range(15))
    assert (extracted.config_dir / "config.py").read_text() == "MAX_EPOCHS = 1\n"


def test_an_archive_of_the_old_scripts_trains(tmp_path):
    """Issue 9: the seed's archive of a car made by `donkey createcar` trains as it is."""
    import donkeycar

    from tests.training.donkeycar.test_archive_hostile import seed_script_archive
    from training.donkeycar.train import RUN_MANIFEST, main

    tub = write_sample_tub(tmp_path / "data", records=60, seed=12)
    car = tmp_path / "car"
    car.mkdir()
    template = Path(donkeycar.__file__).parent / "templates" / "cfg_complete.py"
    (car / "config.py").write_text(template.read_text())  # what `donkey createcar` writes
    (car / "myconfig.py").write_text("MAX_EPOCHS = 1\nBATCH_SIZE = 16\n")
    archive = seed_script_archive(tub, car, tmp_path)
    args = ["--data", str(archive), "--output", str(tmp_path / "out"), "--run-id", "seed"]
    assert main([*args, "--set", "PRINT_MODEL_SUMMARY=False"]) == 0
    run = tmp_path / "out" / "seed"
    manifest = json.loads((run / RUN_MANIFEST).read_text())
    assert manifest["archive"] == "old format" and manifest["records"]["tubs"] == {"data": 60}
    assert len(json.loads((run / "history.json").read_text())["loss"]) == 1  # its myconfig.py
