"""The car's donkeycar config for one run: the archive's config.py and myconfig.py, the
command line's `--set KEY=VALUE` on top, and the paths and switches the trainer needs.

Every key the installed donkeycar reads is accepted (config_keys.py), template or not; a
misspelt one is refused with the nearest names.
"""

from __future__ import annotations

import ast
import logging
import shutil
from pathlib import Path

from training.donkeycar.checks import TrainerError
from training.donkeycar.config_keys import donkeycar_keys, unknown_keys

log = logging.getLogger("trackday.train")


def parse_overrides(pairs: list[str]) -> dict[str, object]:
    """`KEY=VALUE` strings to config values: Python literals where they parse, else strings."""
    overrides: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.isidentifier() or key != key.upper():
            raise TrainerError(
                f"--set {pair!r}: expected KEY=VALUE with an upper-case donkeycar key"
            )
        try:
            overrides[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            overrides[key] = raw
    return overrides


def load_car_config(
    config_dir: Path, work: Path, overrides: dict[str, object], myconfig: Path | None = None
):
    """The car's donkeycar config from the archive, donkeycar's template where it has none.

    `myconfig` replaces the archive's myconfig.py, as `donkey train --myconfig` does.
    """
    import donkeycar
    from donkeycar.config import load_config

    config = config_dir / "config.py"
    config_dir.mkdir(parents=True, exist_ok=True)
    if not config.is_file():
        template = Path(donkeycar.__file__).parent / "templates" / "cfg_complete.py"
        shutil.copyfile(template, config)
        log.info("no config.py in the archive: using donkeycar's template cfg_complete.py")
    if myconfig is not None:
        if not myconfig.is_file():
            raise TrainerError(f"--myconfig {myconfig}: no such file")
        shutil.copyfile(myconfig, config_dir / "myconfig.py")
    cfg = load_config(str(config), "myconfig.py")
    template_keys = {k for k in vars(cfg) if k.isupper()}
    problem = unknown_keys(list(overrides), template_keys | donkeycar_keys())
    if problem:
        raise TrainerError(problem)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    cfg.CAR_PATH = str(work)
    cfg.DATA_PATH = str(work / "data")
    cfg.MODELS_PATH = str(work / "models")
    cfg.CREATE_TF_LITE = True  # the car needs the .tflite whatever the config says
    cfg.SHOW_PLOT = False  # the trainer draws its own loss curve from the history
    Path(cfg.MODELS_PATH).mkdir(parents=True, exist_ok=True)
    return cfg
