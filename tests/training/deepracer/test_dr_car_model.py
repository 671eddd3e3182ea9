"""`trackday dr car-model` on the real sample model of deepracer-utils' sdist.

The package is opened the way the car's model loader opens an upload (aws-deepracer-systems-pkg
model_loader_node.py): unpack it, take the one `.pb` anywhere inside (more than one is refused),
read model_metadata.json at its root. Inference on it runs in tests/trainer/test_car_model.py,
where TensorFlow is.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests import dr_samples
from trackday.cli import app
from training.deepracer.car_model import CarModelError, build_car_model

runner = CliRunner()


def sample_run(root: Path, best: int | None = 30, last: int | None = 48) -> Path:
    """A run's model/ folder as the trainer leaves it: a frozen graph per checkpoint, the
    metadata and (after evaluations) deepracer_checkpoints.json."""
    model = root / "run" / "model"
    model.mkdir(parents=True)
    for source in dr_samples.model_dir().iterdir():
        os.symlink(source, model / source.name)
    if best is not None:
        (model / "deepracer_checkpoints.json").write_text(
            json.dumps(
                {
                    "best_checkpoint": {
                        "name": f"{best}_Step-{best * 600}.ckpt",
                        "time_stamp": 1.0,
                        "avg_comp_pct": 100.0,
                    },
                    "last_checkpoint": {
                        "name": f"{last}_Step-{last * 600}.ckpt",
                        "time_stamp": 2.0,
                        "avg_comp_pct": 80.0,
                    },
                }
            )
        )
    return model.parent


def car_loads(archive: bytes, into: Path) -> tuple[Path, dict]:
    """What the car's loader does with an upload; returns (the graph, the metadata)."""
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as opened:
        opened.extractall(into, filter="data")
    graphs = [Path(d) / f for d, _, files in os.walk(into) for f in files if f.endswith(".pb")]
    assert len(graphs) == 1, f"the car ignores an archive with {len(graphs)} .pb files"
    metadata = json.loads((into / "model_metadata.json").read_text())
    return graphs[0], metadata


def test_best_checkpoint_packed_as_drfc_packs_it(tmp_path):
    model = build_car_model(str(sample_run(tmp_path)))
    with tarfile.open(fileobj=io.BytesIO(model.archive)) as opened:
        assert sorted(opened.getnames()) == ["agent/model.pb", "model_metadata.json"]
    graph, metadata = car_loads(model.archive, tmp_path / "car")
    assert model.checkpoint == 30
    assert graph.read_bytes() == (dr_samples.model_dir() / "model_30.pb").read_bytes()
    assert metadata["sensor"] == ["FRONT_FACING_CAMERA"] and len(metadata["action_space"]) == 12
    again = build_car_model(str(sample_run(tmp_path / "again")))
    assert again.archive == model.archive  # reproducible: same checkpoint, same bytes


def test_last_or_numbered_checkpoint(tmp_path):
    run = str(sample_run(tmp_path))
    assert build_car_model(run, "last").checkpoint == 48
    assert build_car_model(run, 15).checkpoint == 15
    with pytest.raises(CarModelError, match=r"model_16\.pb: no frozen .* keeps \[15, 30, 48\]"):
        build_car_model(run, 16)


def test_run_without_checkpoint_record_needs_a_number(tmp_path):
    run = str(sample_run(tmp_path, best=None))
    with pytest.raises(CarModelError, match=r"names no best checkpoint.*--checkpoint N"):
        build_car_model(run)


def test_metadata_the_car_refuses_is_refused(tmp_path):
    run = sample_run(tmp_path)
    metadata = run / "model" / "model_metadata.json"
    original = json.loads(metadata.read_text())
    metadata.unlink()
    metadata.write_text(json.dumps(original | {"training_algorithm": "dqn"}))
    with pytest.raises(CarModelError, match="training_algorithm 'dqn'"):
        build_car_model(str(run))
    metadata.write_text(json.dumps(original | {"sensor": ["FRONT_FACING_CAMERA", "RADAR"]}))
    with pytest.raises(CarModelError, match=r"sensor \['RADAR'\]"):
        build_car_model(str(run))


def test_cli_writes_to_a_bucket(tmp_path, s3_server, monkeypatch):
    """From the run's bucket to an upload prefix, as DRfC's dr-upload-car-zip does."""
    bucket = s3_server.create_bucket()
    run = sample_run(tmp_path)
    for path in (run / "model").iterdir():
        s3_server.put(bucket, f"racer-1/model/{path.name}", path.read_bytes())
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    result = runner.invoke(
        app,
        [
            "dr",
            "car-model",
            f"s3://{bucket}/racer-1",
            "--last",
            "--out",
            f"s3://{bucket}/upload/racer-1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"wrote s3://{bucket}/upload/racer-1/carfile.tar.gz: checkpoint 48" in result.output
    stored = s3_server.client().get_object(Bucket=bucket, Key="upload/racer-1/carfile.tar.gz")
    graph, _ = car_loads(stored["Body"].read(), tmp_path / "c")
    assert graph.read_bytes() == (dr_samples.model_dir() / "model_48.pb").read_bytes()
    both = runner.invoke(app, ["dr", "car-model", f"s3://{bucket}/racer-1", "--last", "-c", "3"])
    assert both.exit_code == 2 and both.output.startswith("error: ")
