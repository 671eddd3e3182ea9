"""`--transfer URL`: a cloud job starts from a model in the bucket, as `donkey train --transfer`
(and reads its `--myconfig` from there too).

The bucket is a real S3 API on loopback (`rclone serve s3`, tests/servers.py); the model in
it is the shared run's (conftest.py), uploaded as a finished run's outputs are. The result is
loaded with donkeycar's own loader (`get_model_by_type` + `load`, as `manage.py drive` does)
and its weights are compared with the transfer model's: on 5.4.0 with FREEZE_LAYERS the
layers up to `flattened` are the transfer model's exactly (donkeycar's
`freeze_first_layers`); on 5.3.0, which has no FREEZE_LAYERS, one short epoch leaves every
weight far closer to the transfer model than to a fresh model's random start.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.old_archives import old_format_archive
from tests.servers import S3Server, unique_name
from training import storage
from training.donkeycar.sample_tub import write_sample_tub
from training.donkeycar.train import COMPLETE, RUN_MANIFEST, main


@pytest.fixture
def bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the loopback S3 server, reached as a job reaches its bucket (env)."""
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    name = unique_name()
    fs, _ = storage.filesystem(f"s3://{name}")
    fs.mkdir(name)  # CreateBucket through the S3 API
    return f"s3://{name}"


def _upload_model(model: Path, url: str) -> None:
    """The model's files under `url`, each with its checksum sidecar (as a run uploads them)."""
    if model.is_file():
        storage.upload(model, url, progress=False)
    for path in sorted(p for p in model.rglob("*") if p.is_file()):
        storage.upload(path, storage.join(url, path.relative_to(model).as_posix()), progress=False)


def _layers(path: Path | None) -> list[tuple[str, list[np.ndarray]]]:
    """A linear model's layers and weights, loaded as the car's `manage.py drive` loads it."""
    import donkeycar
    from donkeycar.config import load_config
    from donkeycar.utils import get_model_by_type

    cfg = load_config(str(Path(donkeycar.__file__).parent / "templates" / "cfg_complete.py"))
    pilot = get_model_by_type("linear", cfg)
    if path is not None:
        pilot.load(str(path))
    return [(layer.name, layer.get_weights()) for layer in pilot.interpreter.model.layers]


def _distance(a: list, b: list) -> float:
    """The summed norm of the weights' differences, layer by layer."""
    pairs = [
        (x, y) for (_, wa), (_, wb) in zip(a, b, strict=True) for x, y in zip(wa, wb, strict=True)
    ]
    return float(sum(np.linalg.norm(x - y) for x, y in pairs))


def test_job_trains_from_a_transfer_model_in_the_bucket(trained, bucket, tmp_path: Path) -> None:
    import donkeycar

    _, source_run = trained
    source = json.loads((source_run / RUN_MANIFEST).read_text())["model"]  # file or folder
    model_url = f"{bucket}/runs/donkeycar/r1/{source}"
    _upload_model(source_run / source, model_url)
    tub = write_sample_tub(tmp_path / "data", records=120, seed=9)
    data = old_format_archive(tub, tmp_path / "data.tar.gz")
    myconfig = tmp_path / "myconfig.py"  # `submit --myconfig` puts it into the run's folder
    myconfig.write_text("MAX_EPOCHS = 1\nBATCH_SIZE = 16\nFREEZE_LAYERS = True\n")
    storage.upload(myconfig, f"{bucket}/runs/donkeycar/t/myconfig.py", progress=False)
    args = ["--data", str(data), "--output", str(tmp_path / "out"), "--run-id", "t"]
    args += ["--myconfig", f"{bucket}/runs/donkeycar/t/myconfig.py"]
    assert main([*args, "--transfer", model_url]) == 0

    run = tmp_path / "out" / "t"
    manifest = json.loads((run / RUN_MANIFEST).read_text())
    assert manifest["transfer"]["source"] == model_url
    assert manifest["transfer"]["model"] == source
    outputs = json.loads((source_run / RUN_MANIFEST).read_text())["outputs"]
    assert manifest["transfer"]["sha256"] == {
        name: digest
        for name, digest in outputs.items()
        if name == source or name.startswith(source + "/")
    }
    assert len(json.loads((run / "history.json").read_text())["loss"]) == 1  # its myconfig.py
    [entry] = json.loads((run / "database.json").read_text())
    assert entry["Transfer"] == source  # donkeycar's own record of the starting model
    start, result = _layers(source_run / source), _layers(run / manifest["model"])
    frozen = [name for name, _ in start].index("flattened")
    if donkeycar.__version__ != "5.3.0":  # 5.4.0: FREEZE_LAYERS keeps them as loaded
        for (name, before), (_, after) in zip(start[:frozen], result[:frozen], strict=True):
            assert all(np.array_equal(x, y) for x, y in zip(before, after, strict=True)), name
        assert _distance(start[frozen:], result[frozen:]) > 0  # the rest trained
    fresh = _layers(None)
    assert _distance(start, result) < 0.2 * _distance(start, fresh)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ("runs/donkeycar/r1/pilot.tflite", ".tflite file extension; give a .h5 or .keras"),
        ("runs/donkeycar/none/pilot.h5", "no model there"),
        ("runs/donkeycar/bare/pilot.h5", "no checksum sidecar (.sha256)"),
    ],
)
def test_unusable_transfer_model_in_the_bucket_is_refused(
    bucket, where: str, expected: str, tmp_path: Path, capsys
) -> None:
    s3 = storage.filesystem(bucket)[0]
    s3.pipe_file(f"{bucket.removeprefix('s3://')}/runs/donkeycar/bare/pilot.h5", b"not verified")
    args = ["--data", str(tmp_path / "never-read.tar.zst"), "--output", str(tmp_path / "out")]
    assert main([*args, "--transfer", f"{bucket}/{where}"]) == 1
    err = capsys.readouterr().err
    assert expected in err and "never-read" not in err  # refused before the data's download
    assert not list((tmp_path / "out").rglob(COMPLETE))
