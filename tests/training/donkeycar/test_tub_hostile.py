"""Packing tubs that lead out of themselves (symlinks, catalog paths) and empty catalogs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zstandard

from training.donkeycar.archive import TubsRejected, create_archive, extract_archive
from training.donkeycar.sample_tub import write_sample_tub

SECRET = b"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG\n"


@pytest.fixture
def tub(tmp_path: Path) -> Path:
    return write_sample_tub(tmp_path / "data", records=20, seed=4)


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "home" / ".aws" / "credentials"
    path.parent.mkdir(parents=True)
    path.write_bytes(SECRET)
    return path


def set_paths(tub: Path, paths: list[str]) -> None:
    lines = (tub / "manifest.json").read_text().splitlines()
    meta = json.loads(lines[4])
    meta["paths"] = paths
    lines[4] = json.dumps(meta)
    (tub / "manifest.json").write_text("\n".join(lines) + "\n")


def archive_bytes(archive: Path) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj().decompress(archive.read_bytes())


def refused(tub: Path, tmp_path: Path, expected: str, skip_bad: bool = True) -> None:
    archive = tmp_path / "a.tar.zst"
    with pytest.raises(TubsRejected, match=expected):
        create_archive([tub], archive, skip_bad=skip_bad)
    assert not archive.exists()


def test_a_catalog_linked_to_a_credentials_file_is_refused(tub, tmp_path, secret):
    (tub / "catalog_0.catalog").unlink()
    (tub / "catalog_0.catalog").symlink_to(secret)
    refused(tub, tmp_path, r"catalog_0\.catalog is a link out of the tub")


def test_a_catalog_manifest_linked_out_is_refused(tub, tmp_path, secret):
    (tub / "catalog_0.catalog_manifest").unlink()
    (tub / "catalog_0.catalog_manifest").symlink_to(secret)
    refused(tub, tmp_path, r"catalog_0\.catalog_manifest is a link out of the tub")


@pytest.mark.parametrize(
    "path",
    [
        "../home/.aws/credentials.catalog",
        "/etc/passwd",
        "sub/catalog_0.catalog",
        "catalog_0.txt",
        ".catalog",
    ],
)
def test_catalog_paths_outside_the_tub_are_refused(tub, tmp_path, secret, path):
    (secret.parent / "credentials.catalog").write_bytes(SECRET)
    set_paths(tub, [path])
    refused(tub, tmp_path, "not a catalog file name in the tub")


def test_a_manifest_linked_out_is_refused(tub, tmp_path):
    outside = tmp_path / "elsewhere.json"
    outside.write_bytes((tub / "manifest.json").read_bytes())
    (tub / "manifest.json").unlink()
    (tub / "manifest.json").symlink_to(outside)
    refused(tub, tmp_path, r"manifest\.json is a link out of the tub")


def test_an_images_folder_linked_out_is_refused(tub, tmp_path):
    (tub / "images").rename(tmp_path / "pictures")
    (tub / "images").symlink_to(tmp_path / "pictures")
    refused(tub, tmp_path, "images is a link out of the tub")


def test_an_image_linked_out_is_a_bad_record_and_never_packed(tub, tmp_path, secret):
    image = tub / "images" / "3_cam_image_array_.jpg"
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(image.read_bytes() + SECRET)  # a JPEG with the secret after its end
    image.unlink()
    image.symlink_to(outside)
    refused(
        tub, tmp_path, "record 3: image unreadable .a symbolic link out of the tub.", skip_bad=False
    )
    archive = tmp_path / "a.tar.zst"
    manifest = create_archive([tub], archive, skip_bad=True)
    assert manifest.skipped == {"data": 1}
    assert SECRET not in archive_bytes(archive)


def test_links_inside_the_tub_are_followed(tub, tmp_path):
    image = tub / "images" / "3_cam_image_array_.jpg"
    image.unlink()
    image.symlink_to(tub / "images" / "4_cam_image_array_.jpg")
    assert create_archive([tub], tmp_path / "a.tar.zst").tubs == {"data": 20}


def _with_empty_catalog(tub: Path) -> None:
    """What a car that lost power just after opening a new catalog leaves (donkeycar #815)."""
    (tub / "catalog_1.catalog").write_bytes(b"")
    (tub / "catalog_1.catalog_manifest").write_text(
        json.dumps(
            {
                "created_at": 0,
                "line_lengths": [],
                "path": "catalog_1.catalog_manifest",
                "start_index": 20,
            }
        )
        + "\n"
    )
    set_paths(tub, ["catalog_0.catalog", "catalog_1.catalog"])


def test_an_empty_catalog_is_refused_naming_it(tub, tmp_path):
    _with_empty_catalog(tub)
    refused(
        tub,
        tmp_path,
        r"data: tub: catalog_1\.catalog is empty: donkeycar cannot read it",
        skip_bad=False,
    )


def test_skip_bad_leaves_an_empty_catalog_out_and_says_so(tub, tmp_path):
    _with_empty_catalog(tub)
    archive = tmp_path / "a.tar.zst"
    manifest = create_archive([tub], archive, skip_bad=True)
    assert manifest.skipped_catalogs == {"data": ["catalog_1.catalog"]}
    assert manifest.tubs == {"data": 20}
    with archive.open("rb") as f:
        extracted = extract_archive(f, tmp_path / "out")
    assert extracted.manifest == manifest
    meta = json.loads((extracted.tubs[0] / "manifest.json").read_text().splitlines()[4])
    assert meta["paths"] == ["catalog_0.catalog"]
    assert not (extracted.tubs[0] / "catalog_1.catalog").exists()


def test_the_archive_command_says_which_catalog_it_left_out(tub, tmp_path):
    from typer.testing import CliRunner

    from trackday.cli import app

    _with_empty_catalog(tub)
    result = CliRunner().invoke(
        app, ["donkey", "archive", str(tub), "--skip-bad", "-o", str(tmp_path / "a.tar.zst")]
    )
    assert result.exit_code == 0, result.output
    assert "data: left out catalog_1.catalog (empty: donkeycar cannot read it)" in " ".join(
        result.output.split()
    )
