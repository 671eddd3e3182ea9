"""Archives made to hurt, and archives made by GNU tar: extraction stays in its folder, bounded."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard

from training.donkeycar.archive import ArchiveError, create_archive, extract_archive
from training.donkeycar.sample_tub import write_sample_tub

GIB = 1 << 30


def extract(archive: Path, dest: Path):
    with archive.open("rb") as f:
        return extract_archive(f, dest)


def files_of(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def zst(members: list[tuple[tarfile.TarInfo, bytes]], path: Path) -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(zstandard.ZstdCompressor().compress(buffer.getvalue()))
    return path


# --------------------------------------------------------------------- GNU tar (issue 9, item 1)


def seed_script_archive(tub: Path, car: Path, work: Path) -> Path:
    """Exactly what the seed's make_steering_archive.sh ran, with the real tar and gzip."""
    archive = work / "steering.tar"
    subprocess.run(["tar", "-chf", str(archive), "-C", str(tub), "."], check=True)
    subprocess.run(["tar", "-rf", str(archive), "config.py", "myconfig.py"], cwd=car, check=True)
    subprocess.run(["gzip", str(archive)], check=True)
    return work / "steering.tar.gz"


def test_archives_of_the_old_scripts_extract(tmp_path: Path) -> None:
    tub = write_sample_tub(tmp_path / "data", records=12)
    car = tmp_path / "car"
    car.mkdir()
    (car / "config.py").write_text("MAX_EPOCHS = 2\n")
    (car / "myconfig.py").write_text("BATCH_SIZE = 4\n")
    archive = seed_script_archive(tub, car, tmp_path)
    names = subprocess.run(
        ["tar", "-tzf", str(archive)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert names[0] == "./" and "./manifest.json" in names  # what GNU tar writes
    extracted = extract(archive, tmp_path / "out")
    assert extracted.manifest is None
    assert files_of(extracted.tubs[0]) == files_of(tub)
    assert (extracted.config_dir / "myconfig.py").read_text() == "BATCH_SIZE = 4\n"


def test_old_format_error_recommends_a_command_that_works(tmp_path: Path) -> None:
    folder = tmp_path / "notatub"
    folder.mkdir()
    (folder / "notes.txt").write_text("x")
    archive = tmp_path / "x.tar.gz"
    subprocess.run(["tar", "-czf", str(archive), "-C", str(folder), "."], check=True)
    with pytest.raises(ArchiveError, match=r"no manifest\.json") as error:
        extract(archive, tmp_path / "out")
    assert "tar " not in str(error.value) and "trackday donkey archive" in str(error.value)


# --------------------------------------------------------------------- bombs (issue 13, item 2)


def _bomb(path: Path, size: int, name: str = "tubs/data/images/0_cam.jpg") -> Path:
    """A .tar.zst holding one member of `size` zero bytes, compressed as it is generated."""
    info = tarfile.TarInfo(name)
    info.size = size
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    zeros = bytes(1 << 20)
    with path.open("wb") as out:
        out.write(compressor.compress(info.tobuf(tarfile.GNU_FORMAT)))
        for _ in range(size >> 20):
            out.write(compressor.compress(zeros))
        out.write(compressor.compress(bytes(1024)))
        out.write(compressor.flush())
    return path


_MEASURE = """
import sys
from pathlib import Path
from training.donkeycar.archive import ArchiveError, extract_archive
try:
    with open(sys.argv[1], "rb") as f:
        extract_archive(f, Path(sys.argv[2]))
    print("extracted")
except ArchiveError as e:
    print("refused:", e)
# VmHWM, not ru_maxrss: the latter keeps the forking parent's high-water mark across exec
print(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
"""


def test_a_3_gib_member_is_refused_from_its_header(tmp_path: Path) -> None:
    bomb = _bomb(tmp_path / "bomb.tar.zst", 3 * GIB)
    assert bomb.stat().st_size < 1 << 20
    out = tmp_path / "out"
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(bomb), str(out)],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    verdict, peak_kib = done.stdout.strip().splitlines()
    assert verdict.startswith("refused: archive member tubs/data/images/0_cam.jpg is 3221225472")
    assert int(peak_kib) < 200 * 1024, f"peak RSS {peak_kib} KiB"
    assert disk_bytes(out) == 0


def test_many_members_expanding_past_the_ratio_are_refused(tmp_path: Path) -> None:
    members = [(tarfile.TarInfo(f"tubs/data/images/{i}.jpg"), bytes(8 << 20)) for i in range(40)]
    bomb = zst(members, tmp_path / "many.tar.zst")
    with pytest.raises(ArchiveError, match="decompression bomb"):
        extract(bomb, tmp_path / "out")
    assert disk_bytes(tmp_path / "out") <= 80 << 20  # the floor, then refused


def test_a_flood_of_empty_members_is_refused(tmp_path: Path) -> None:
    members = [(tarfile.TarInfo(f"f/{i}"), b"") for i in range(40_000)]
    bomb = zst(members, tmp_path / "flood.tar.zst")
    with pytest.raises(ArchiveError, match="decompression bomb"):
        extract(bomb, tmp_path / "out")
    assert len(list((tmp_path / "out").rglob("*"))) < 30_000


def test_an_oversized_extended_header_is_refused_before_it_is_read(tmp_path: Path) -> None:
    info = tarfile.TarInfo("tubs/data/manifest.json")
    info.pax_headers = {"comment": "x" * (2 << 20)}
    bomb = zst([(info, b"{}")], tmp_path / "pax.tar.zst")
    with pytest.raises(ArchiveError, match="extended tar header of 2097"):
        extract(bomb, tmp_path / "out")


@pytest.mark.parametrize("tar_format", ["gnu", "posix"])
def test_sparse_files_are_refused(tmp_path: Path, tar_format: str) -> None:
    """GNU tar stores a 1 GiB hole in a few blocks; extracting it would write 1 GiB."""
    src = tmp_path / "src"
    src.mkdir()
    with (src / "hole.jpg").open("wb") as f:
        f.truncate(GIB)
    archive = tmp_path / "sparse.tar.gz"
    subprocess.run(
        ["tar", f"--format={tar_format}", "-S", "-czf", str(archive), "-C", str(src), "hole.jpg"],
        check=True,
    )
    assert archive.stat().st_size < 1 << 20
    with pytest.raises(ArchiveError, match="sparse"):
        extract(archive, tmp_path / "out")
    assert disk_bytes(tmp_path / "out") == 0


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE])
def test_links_and_special_files_are_refused(tmp_path: Path, kind: bytes) -> None:
    info = tarfile.TarInfo("tubs/data/catalog_0.catalog")
    info.type, info.linkname = kind, "/home/user/.aws/credentials"
    with pytest.raises(ArchiveError, match="not a regular file"):
        extract(zst([(info, b"")], tmp_path / "l.tar.zst"), tmp_path / "out")


# --------------------------------------------------------------------- the manifest (item 3)


def _with_manifest(path: Path, manifest: object, tubs: tuple[str, ...] = ("data",)) -> Path:
    """An archive whose payload hash is right, holding `manifest` (any JSON) as its manifest."""
    members, digest = [], hashlib.sha256()
    for tub in tubs:
        name, data = f"tubs/{tub}/manifest.json", b"{}\n"
        members.append((tarfile.TarInfo(name), data))
        digest.update(f"{name}\0{len(data)}\0".encode() + data)
    text = (
        json.dumps(manifest).replace("DIGEST", digest.hexdigest())
        if not isinstance(manifest, bytes)
        else manifest.decode()
    )
    members.append((tarfile.TarInfo("trackday-archive.json"), text.encode()))
    return zst(members, path)


GOOD = {
    "format": "trackday-tub-archive/1",
    "tubs": {"data": 1},
    "payload_sha256": "DIGEST",
    "created": "2026-01-01T00:00:00+00:00",
}


def test_a_hand_made_manifest_that_follows_the_schema_is_read(tmp_path: Path) -> None:
    extracted = extract(_with_manifest(tmp_path / "ok.tar.zst", GOOD), tmp_path / "out")
    assert extracted.tubs == [tmp_path / "out" / "tubs" / "data"]


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ([1, 2], "is a JSON list, not an object"),
        ("just a string", "is a JSON str, not an object"),
        (b"[" * 100_000 + b"]" * 100_000, "unreadable"),
        ({**GOOD, "tubs": {"../../x": 1}}, "'tubs' is not a table of plain folder names"),
        ({**GOOD, "tubs": {"/etc": 1}}, "'tubs' is not a table of plain folder names"),
        ({**GOOD, "tubs": {"..": 1}}, "'tubs' is not a table of plain folder names"),
        ({**GOOD, "tubs": {"data": -1}}, "'tubs' is not a table"),
        ({**GOOD, "tubs": {"data": True}}, "'tubs' is not a table"),
        ({**GOOD, "tubs": {}}, "'tubs' is not a table"),
        ({**GOOD, "tubs": {"other": 1}}, "names tubs the archive lacks: ['other']"),
        ({**GOOD, "tubs": [["data", 1]]}, "'tubs' is not a table"),
        ({**GOOD, "config_files": ["../../.bashrc"]}, "'config_files' is not a list of"),
        ({**GOOD, "config_files": [[]]}, "'config_files' is not a list of"),  # found by fuzzing
        ({**GOOD, "skipped": {"ghost": 1}}, "'skipped' names tubs"),
        ({**GOOD, "payload_sha256": 5}, "'payload_sha256' is not 64 hex digits"),
        ({**GOOD, "extra": 1}, "unknown fields ['extra']"),
        ({k: v for k, v in GOOD.items() if k != "created"}, "lacks 'created'"),
        ({**GOOD, "format": "other/2"}, "unsupported archive format 'other/2'"),
    ],
)
def test_a_manifest_off_its_schema_is_refused(
    tmp_path: Path, manifest: object, expected: str
) -> None:
    archive = _with_manifest(tmp_path / "m.tar.zst", manifest)
    with pytest.raises(ArchiveError) as error:
        extract(archive, tmp_path / "work" / "out")
    assert expected in str(error.value)


def test_a_tub_that_is_a_file_is_not_a_tub(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"tubs/data\x002\x00hi").hexdigest()
    manifest = {**GOOD, "payload_sha256": digest}
    members = [
        (tarfile.TarInfo("tubs/data"), b"hi"),
        (tarfile.TarInfo("trackday-archive.json"), json.dumps(manifest).encode()),
    ]
    with pytest.raises(ArchiveError, match="names tubs the archive lacks"):
        extract(zst(members, tmp_path / "f.tar.zst"), tmp_path / "out")


def test_real_archives_stay_far_from_the_caps(tmp_path: Path) -> None:
    """The ratio cap must leave real tubs room: a sample tub packs at about 1.4."""
    tub = write_sample_tub(tmp_path / "data", records=200)
    archive = tmp_path / "a.tar.zst"
    create_archive([tub], archive)
    ratio = disk_bytes(tub) / archive.stat().st_size
    assert ratio < 4
    assert files_of(extract(archive, tmp_path / "out").tubs[0]) == files_of(tub)


@pytest.mark.parametrize("keep", [3, 4, 10])
def test_a_gzip_stream_cut_in_its_header_is_a_damaged_archive(tmp_path: Path, keep: int) -> None:
    """Found by tests/fuzz: tarfile's own gzip reader raised TypeError here."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        tar.addfile(tarfile.TarInfo("a"), io.BytesIO(b""))
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(data.getvalue()[:keep])
    with pytest.raises(ArchiveError, match="damaged"):
        extract(cut, tmp_path / "out")
