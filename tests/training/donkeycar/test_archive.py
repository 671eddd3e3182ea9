"""Tub checks and the training archive: round trips, old archives, and each kind of damage."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from tests.old_archives import old_format_archive
from training.donkeycar.archive import (
    ARCHIVE_MANIFEST,
    ArchiveError,
    TubsRejected,
    create_archive,
    extract_archive,
    read_manifest,
)
from training.donkeycar.sample_tub import write_sample_tub
from training.donkeycar.tub import scan_tub


@pytest.fixture
def tub(tmp_path: Path) -> Path:
    return write_sample_tub(tmp_path / "data", records=40, seed=1)


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def extract(archive: Path, dest: Path):
    with archive.open("rb") as f:
        return extract_archive(f, dest)


def catalog_lines(tub: Path) -> list[str]:
    return (tub / "catalog_0.catalog").read_text().splitlines()


def test_round_trip_keeps_every_file_and_records_counts(tub: Path, tmp_path: Path) -> None:
    config = tmp_path / "car"
    config.mkdir()
    (config / "config.py").write_text("MAX_EPOCHS = 3\n")
    (config / "myconfig.py").write_text("BATCH_SIZE = 16\n")
    archive = tmp_path / "a.tar.zst"

    manifest = create_archive([tub], archive, config_dir=config)
    extracted = extract(archive, tmp_path / "out")

    assert manifest.tubs == {"data": 40} and manifest.skipped == {}
    assert manifest.config_files == ["config.py", "myconfig.py"]
    assert files_of(extracted.tubs[0]) == files_of(tub)
    assert (extracted.config_dir / "myconfig.py").read_text() == "BATCH_SIZE = 16\n"
    assert extracted.manifest == manifest
    assert read_manifest(archive) == manifest
    assert len(manifest.payload_sha256) == 64


def test_archive_is_a_standard_tar_zst(tub: Path, tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.zst"
    create_archive([tub], archive)
    listing = subprocess.run(
        ["tar", "--zstd", "-tf", str(archive)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "tubs/data/manifest.json" in listing and listing[-1] == ARCHIVE_MANIFEST
    assert sum(name.startswith("tubs/data/images/") for name in listing) == 40


def test_tubs_with_the_same_folder_name_stay_apart(tmp_path: Path) -> None:
    first = write_sample_tub(tmp_path / "a" / "data", records=5)
    second = write_sample_tub(tmp_path / "b" / "data", records=7, seed=2)
    manifest = create_archive([first, second], tmp_path / "a.tar.zst")
    assert manifest.tubs == {"data": 5, "data_2": 7}


def test_long_tub_names_fall_back_to_pax_headers(tmp_path: Path) -> None:
    tub = write_sample_tub(tmp_path / ("t" * 120), records=3)
    archive = tmp_path / "a.tar.zst"
    create_archive([tub], archive)
    assert files_of(extract(archive, tmp_path / "out").tubs[0]) == files_of(tub)


def test_changed_payload_is_detected(tub: Path, tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.zst"
    create_archive([tub], archive)
    # Re-pack the same members with one image byte changed, keeping the original manifest.
    unpacked = zstandard.ZstdDecompressor().decompressobj().decompress(archive.read_bytes())
    plain = io.BytesIO(unpacked)
    tampered = tmp_path / "tampered.tar"
    with tarfile.open(tampered, "w") as out, tarfile.open(fileobj=plain) as src:
        for member in src:
            data = src.extractfile(member).read()
            if member.name.endswith("5_cam_image_array_.jpg"):
                data = data[:100] + bytes([data[100] ^ 1]) + data[101:]
            out.addfile(member, io.BytesIO(data))
    with pytest.raises(ArchiveError, match="checksum mismatch"):
        extract(tampered, tmp_path / "out")


def test_truncated_archive_is_refused(tub: Path, tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.zst"
    create_archive([tub], archive)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ArchiveError, match="damaged"):
        extract(archive, tmp_path / "out")


def test_member_escaping_the_folder_is_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(ArchiveError, match="unsafe"):
        extract(evil, tmp_path / "out")
    assert not (tmp_path / "outside.txt").exists()


def test_old_format_tar_gz_is_adopted(tub: Path, tmp_path: Path) -> None:
    (tmp_path / "config.py").write_text("MAX_EPOCHS = 2\n")
    old = old_format_archive(tub, tmp_path / "old.tar.gz", tmp_path / "config.py")
    extracted = extract(old, tmp_path / "out")
    assert extracted.manifest is None
    assert files_of(extracted.tubs[0]) == files_of(tub)
    assert (extracted.config_dir / "config.py").read_text() == "MAX_EPOCHS = 2\n"


def test_old_format_without_a_tub_says_what_it_expects(tmp_path: Path) -> None:
    old = tmp_path / "old.tar.gz"
    with tarfile.open(old, "w:gz") as tar:
        info = tarfile.TarInfo("notes.txt")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(ArchiveError, match=r"no manifest\.json at the archive root"):
        extract(old, tmp_path / "out")


# Each kind of damage: (how to damage the tub, expected reason, record index or None for the tub)
def remove_image(tub: Path) -> None:
    (tub / "images" / "3_cam_image_array_.jpg").unlink()


def truncate_image(tub: Path) -> None:
    image = tub / "images" / "3_cam_image_array_.jpg"
    image.write_bytes(image.read_bytes()[:500])


def truncate_last_catalog_line(tub: Path) -> None:
    text = (tub / "catalog_0.catalog").read_text()
    (tub / "catalog_0.catalog").write_text(
        text[: text.rstrip("\n").rfind("\n") + 1] + '{"_index": 39, "cam/im'
    )


def drop_angle(tub: Path) -> None:
    lines = catalog_lines(tub)
    record = json.loads(lines[3])
    del record["user/angle"]
    lines[3] = json.dumps(record)
    (tub / "catalog_0.catalog").write_text("\n".join(lines) + "\n")


RECORD_DAMAGE = [
    (remove_image, 3, "image file missing: images/3_cam_image_array_.jpg"),
    (truncate_image, 3, "JPEG image is truncated"),
    (truncate_last_catalog_line, 39, "catalog line does not parse as JSON"),
    (drop_angle, 3, "missing user/angle"),
]


@pytest.mark.parametrize(
    ("damage", "index", "reason"), RECORD_DAMAGE, ids=lambda v: getattr(v, "__name__", None)
)
def test_damaged_record_is_reported_and_refused(tub, tmp_path, damage, index, reason) -> None:
    damage(tub)
    output = tmp_path / "a.tar.zst"
    with pytest.raises(TubsRejected) as refused:
        create_archive([tub], output)
    [problem] = refused.value.problems
    assert (problem.tub, problem.index) == (tub, index) and reason in problem.reason
    assert f"record {index}" in str(refused.value) and "--skip-bad" in str(refused.value)
    assert not output.exists() and not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize(
    ("damage", "index", "reason"), RECORD_DAMAGE, ids=lambda v: getattr(v, "__name__", None)
)
def test_skip_bad_leaves_the_record_out_and_the_tub_untouched(
    tub, tmp_path, damage, index, reason
) -> None:
    damage(tub)
    before = files_of(tub)
    manifest = create_archive([tub], tmp_path / "a.tar.zst", skip_bad=True)
    assert manifest.tubs == {"data": 39} and manifest.skipped == {"data": 1}
    assert files_of(tub) == before
    extracted = extract(tmp_path / "a.tar.zst", tmp_path / "out")
    rescan = scan_tub(extracted.tubs[0])
    assert rescan.problems == [] and len(rescan.records) == 39 and index in rescan.deleted


def test_missing_manifest_is_refused_even_with_skip_bad(tub: Path, tmp_path: Path) -> None:
    (tub / "manifest.json").unlink()
    with pytest.raises(TubsRejected, match=r"manifest\.json is missing"):
        create_archive([tub], tmp_path / "a.tar.zst", skip_bad=True)


def test_empty_tub_is_refused(tmp_path: Path) -> None:
    tub = write_sample_tub(tmp_path / "data", records=1)
    (tub / "catalog_0.catalog").write_text("")
    with pytest.raises(TubsRejected, match="no records to train on"):
        create_archive([tub], tmp_path / "a.tar.zst", skip_bad=True)


def test_all_records_bad_leaves_nothing_to_train_on(tmp_path: Path) -> None:
    tub = write_sample_tub(tmp_path / "data", records=2)
    for image in (tub / "images").iterdir():
        image.unlink()
    with pytest.raises(ArchiveError, match="nothing to train on"):
        create_archive([tub], tmp_path / "a.tar.zst", skip_bad=True)


def test_deleted_records_are_left_out_without_complaint(tub: Path, tmp_path: Path) -> None:
    lines = (tub / "manifest.json").read_text().splitlines()
    catalog = json.loads(lines[4])
    catalog["deleted_indexes"] = [3, 4]
    lines[4] = json.dumps(catalog)
    (tub / "manifest.json").write_text("\n".join(lines) + "\n")
    (tub / "images" / "3_cam_image_array_.jpg").unlink()  # deleted records need no image

    manifest = create_archive([tub], tmp_path / "a.tar.zst")
    assert manifest.tubs == {"data": 38} and manifest.skipped == {}
    names = set(files_of(extract(tmp_path / "a.tar.zst", tmp_path / "out").tubs[0]))
    assert "images/4_cam_image_array_.jpg" not in names


def test_sample_tub_refuses_to_overwrite(tub: Path) -> None:
    with pytest.raises(FileExistsError):
        write_sample_tub(tub)
