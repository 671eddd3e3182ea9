"""Every model file a run produces loads on a car of the same donkeycar version.

The car's `manage.py drive --model PATH --type TYPE` (donkeycar's templates/complete.py)
refuses a file whose extension it does not know, then builds the pilot with
`donkeycar.utils.get_model_by_type(TYPE, cfg)` and calls its `load(PATH)`; the `.tflite`
is driven as `--type tflite_TYPE`. This test does exactly that with the installed donkeycar,
then runs one inference through the part's `run()` as the vehicle loop does.

It runs in whichever trainer environment runs pytest (.venv-trainer for 5.3.0,
.venv-trainer-5.4.0 for 5.4.0). Every model type runs on 5.3.0; on other versions linear
and categorical run by default and the rest with TRACKDAY_ALL_MODEL_TYPES=1 (CI time).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from training.donkeycar.archive import create_archive
from training.donkeycar.sample_tub import BEHAVIORS, write_sample_tub
from training.donkeycar.train import RUN_MANIFEST, main

DEFAULT = ("linear", "categorical")
OTHERS = ("inferred", "memory", "rnn", "3d", "behavior", "localizer", "imu")


def _model_types() -> list[str]:
    import donkeycar

    if donkeycar.__version__ == "5.3.0" or os.environ.get("TRACKDAY_ALL_MODEL_TYPES") == "1":
        return [*DEFAULT, *OTHERS]
    return list(DEFAULT)


@pytest.fixture(scope="module")
def sensor_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tub carrying behavior, localizer and IMU data, archived once for every model type."""
    root = tmp_path_factory.mktemp("sensors")
    tub = write_sample_tub(root / "data", records=160, seed=11, sensors=True)
    create_archive([tub], root / "data.tar.zst")
    return root / "data.tar.zst"


def _car_config():
    """The car's config: donkeycar's own template, as `donkey createcar` writes it."""
    import donkeycar
    from donkeycar.config import load_config

    return load_config(str(Path(donkeycar.__file__).parent / "templates" / "cfg_complete.py"))


def _accepted_by_drive(model: str) -> bool:
    """Whether the installed manage.py drive accepts this file name (its extension check)."""
    import donkeycar

    complete = (Path(donkeycar.__file__).parent / "templates" / "complete.py").read_text()
    check = rf"'{re.escape(Path(model).suffix)}' in\s*(\\\s*)?model_path"
    return re.search(check, complete) is not None


def _drive_once(model_type: str, path: Path) -> tuple:
    """`manage.py drive --model PATH --type TYPE`'s load, then one pass of the vehicle loop."""
    from donkeycar.utils import get_model_by_type

    cfg = _car_config()
    pilot = get_model_by_type(model_type, cfg)
    pilot.load(str(path))
    image = np.random.default_rng(0).integers(0, 255, (cfg.IMAGE_H, cfg.IMAGE_W, 3), np.uint8)
    base = model_type.removeprefix("tflite_")
    extra: list[object] = []
    if base == "behavior":
        extra = [[1.0] + [0.0] * (BEHAVIORS - 1)]
    elif base == "imu":
        extra = [[0.1] * 6]
    return pilot.run(image, *extra)


@pytest.mark.parametrize("model_type", _model_types())
def test_every_model_file_loads_with_donkeycars_loader(
    model_type: str, sensor_archive: Path, tmp_path: Path
) -> None:
    fast = ["--set", "MAX_EPOCHS=1", "--set", "BATCH_SIZE=16", "--set", "PRINT_MODEL_SUMMARY=False"]
    args = ["--data", str(sensor_archive), "--output", str(tmp_path), "--run-id", "r"]
    assert main([*args, "--model-type", model_type, *fast]) == 0
    run = tmp_path / "r"
    manifest = json.loads((run / RUN_MANIFEST).read_text())
    assert manifest["model_type"] == model_type
    assert manifest["movie"]["frames"] == manifest["records"]["validation"]
    for name, drive_type in ((manifest["model"], model_type), (manifest["tflite"], None)):
        assert _accepted_by_drive(name), f"manage.py drive refuses {name}"
        if drive_type is None:
            drive_type = f"tflite_{model_type}"
        outputs = _drive_once(drive_type, run / name)
        assert all(np.isfinite(np.asarray(o, dtype=float)).all() for o in outputs), outputs
