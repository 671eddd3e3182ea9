"""`trackday donkey fetch` against buckets written to hurt: every name stays in its folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from trackday import runs
from training import storage

RUN_ID = "20260101-000000-abc123"


def _write_run(
    bucket: str,
    outputs: dict[str, bytes],
    listed: dict[str, bytes] | None = None,
    run_id: str = RUN_ID,
) -> str:
    """A finished run as the trainer leaves it; `listed` overrides what the manifest claims."""
    run_url = storage.join(runs.runs_url(bucket), run_id)
    for name, data in outputs.items():
        storage.write_text(storage.join(run_url, name), data.decode())
    claimed = outputs if listed is None else listed
    manifest = json.dumps(
        {
            "run_id": run_id,
            "outputs": {name: hashlib.sha256(data).hexdigest() for name, data in claimed.items()},
        }
    )
    storage.write_text(storage.join(run_url, "run-manifest.json"), manifest)
    digest = hashlib.sha256(manifest.encode()).hexdigest()
    storage.write_text(storage.join(run_url, "COMPLETE"), digest + "\n")
    return run_url


@pytest.fixture
def bucket(tmp_path: Path) -> str:
    return f"file://{tmp_path}/bucket"


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_finished_run_is_fetched_with_nested_outputs(bucket, tmp_path):
    outputs = {"pilot.tflite": b"tfl", "pilot.savedmodel/saved_model.pb": b"pb"}
    run_url = _write_run(bucket, outputs)
    dest = tmp_path / "models" / RUN_ID
    fetched = runs.fetch_run(runs.resolve_run(bucket, RUN_ID), dest)
    assert run_url == runs.resolve_run(bucket, RUN_ID)
    assert {p.relative_to(dest).as_posix() for p in fetched} == {"run-manifest.json", *outputs}
    assert {k: v for k, v in _tree(dest).items() if k != "run-manifest.json"} == outputs
    assert [p.name for p in dest.parent.iterdir()] == [RUN_ID]  # no staging folder left


@pytest.mark.parametrize(
    "name",
    [
        "../../escape.txt",
        "/tmp/abs-escape.txt",
        "a/../../escape.txt",
        "./x",
        "a//b",
        "run-manifest.json",
        "a\\..\\b",
        "",
    ],
)
def test_unsafe_output_names_are_refused_before_anything_is_written(bucket, tmp_path, name):
    data = b"export EVIL=1\n"
    run_url = _write_run(bucket, {"pilot.tflite": b"tfl"}, {"pilot.tflite": b"tfl", name: data})
    if name not in ("", "run-manifest.json") and not name.startswith("/"):  # a naive join
        storage.write_text(storage.join(run_url, name), data.decode())
    dest = tmp_path / "home" / "models" / "run"
    with pytest.raises(runs.RunError, match="unsafe output name"):
        runs.fetch_run(run_url, dest)
    assert not (tmp_path / "home" / "escape.txt").exists()
    assert not Path("/tmp/abs-escape.txt").exists()
    assert not dest.exists()


def test_a_symlinked_folder_in_the_destination_is_not_followed(bucket, tmp_path):
    run_url = _write_run(bucket, {"sub/pilot.tflite": b"tfl"})
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside)
    with pytest.raises(runs.RunError, match="leads outside"):
        runs.fetch_run(run_url, dest)
    assert list(outside.iterdir()) == []


def test_a_failed_check_leaves_the_previous_fetch_as_it_was(bucket, tmp_path):
    run_url = _write_run(
        bucket,
        {"pilot.tflite": b"tampered", "loss.png": b"png"},
        {"pilot.tflite": b"what the trainer wrote", "loss.png": b"png"},
    )
    dest = tmp_path / "dest"
    dest.mkdir()
    before = {"pilot.tflite": b"old model", "run-manifest.json": b"{}"}
    for name, data in before.items():
        (dest / name).write_bytes(data)
    with pytest.raises(runs.RunError, match=r"pilot\.tflite: checksum differs"):
        runs.fetch_run(run_url, dest)
    assert _tree(dest) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".dest")] == []


@pytest.mark.parametrize(
    ("latest", "expected"),
    [
        ('{"url": "file:///etc', "truncated or not JSON"),
        ("[1, 2]", "holds no run URL"),
        ("[" * 100000, "truncated or not JSON"),
        ('{"url": "s3://someone-else/runs/donkeycar/r1"}', "not a run under"),
        ('{"url": "RUNS/../../../../home"}', "not a run under"),
        ('{"url": "RUNS/r1/../../x"}', "not a run under"),
        ('{"url": "RUNS-evil/r1"}', "not a run under"),
        ('{"url": "RUNS/"}', "not a run under"),
    ],
)
def test_latest_must_name_a_run_of_this_bucket(bucket, latest, expected):
    runs_prefix = runs.runs_url(bucket)
    storage.write_text(
        storage.join(runs_prefix, "latest.json"), latest.replace("RUNS", runs_prefix)
    )
    with pytest.raises(runs.RunError, match=expected):
        runs.resolve_run(bucket, "latest")


def test_latest_under_the_runs_prefix_is_followed(bucket):
    runs_prefix = runs.runs_url(bucket)
    url = storage.join(runs_prefix, RUN_ID)
    storage.write_text(storage.join(runs_prefix, "latest.json"), json.dumps({"url": url + "/"}))
    assert runs.resolve_run(bucket, "latest") == url


@pytest.mark.parametrize("run", ["../other", "a/b", ".hidden", ""])
def test_run_ids_are_one_plain_name(bucket, run):
    with pytest.raises(runs.RunError, match="is not a run id"):
        runs.resolve_run(bucket, run)
