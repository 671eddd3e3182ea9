"""An interrupted run's checkpoint: kept in the bucket when SIGTERM stops the run, the model
its next attempt (the same run id, run again after a spot interruption) starts from.

donkeycar's `KerasPilot.train` fits with `ModelCheckpoint(monitor='val_loss',
filepath=model_path, save_best_only=True)` (`donkeycar/parts/keras.py`, 5.3.0 and 5.4.0),
so after every epoch that improved the validation loss the run's models folder holds the
best model so far, under the name `train()` was given. That is the checkpoint: on SIGTERM it
is uploaded with its checksum sidecars under `<run>/checkpoint/`, then `CHECKPOINT.json`
names it (written last: it only ever names a complete upload). The next attempt passes it
to `train()` as its transfer model, which donkeycar loads with `kl.load(transfer)` before
fitting (`donkeycar/pipeline/training.py`): the weights go on from the last improving epoch;
the epochs count again from one and the optimizer starts afresh (donkeycar compiles the
model anew). On 5.4.0, FREEZE_LAYERS freezes the first layers of any transfer model, so a
resumed run freezes them too when the car's config sets it.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from training import storage
from training.donkeycar.checks import TrainerError
from training.donkeycar.transfer import MODEL_SUFFIXES

log = logging.getLogger("trackday.train")

CHECKPOINT_FOLDER = "checkpoint"
CHECKPOINT_RECORD = "CHECKPOINT.json"


def saved_model(models: Path) -> Path | None:
    """The model donkeycar's ModelCheckpoint saved in the run's models folder, if any."""
    if not models.is_dir():
        return None
    found = sorted(p for p in models.iterdir() if p.suffix in MODEL_SUFFIXES)
    return found[-1] if found else None


def save(models: Path, run_url: str) -> str | None:
    """Upload the best model so far (each file verified) and name it in CHECKPOINT.json;
    its URL, or None when no epoch has finished yet (a checkpoint of an earlier attempt is
    then kept)."""
    model = saved_model(models)
    if model is None:
        return None
    url = storage.join(run_url, CHECKPOINT_FOLDER, model.name)
    files = [model] if model.is_file() else sorted(p for p in model.rglob("*") if p.is_file())
    for path in files:
        name = path.relative_to(model.parent).as_posix()
        storage.upload(path, storage.join(run_url, CHECKPOINT_FOLDER, name), progress=False)
    record = {"model": url, "saved": datetime.now(UTC).isoformat(timespec="seconds")}
    storage.write_text(storage.join(run_url, CHECKPOINT_RECORD), json.dumps(record) + "\n")
    log.info("checkpoint kept at %s", url)
    return url


def resume_point(run_url: str) -> str | None:
    """The checkpoint an earlier, interrupted attempt of this run left, if any."""
    record = storage.join(run_url, CHECKPOINT_RECORD)
    if not storage.exists(record):
        return None
    url = json.loads(storage.read_text(record)).get("model")
    name = str(url).removeprefix(storage.join(run_url, CHECKPOINT_FOLDER) + "/")
    if not isinstance(url, str) or name == url or name in ("", ".", "..") or "/" in name:
        raise TrainerError(
            f"{record} names {url!r}, not a model in {CHECKPOINT_FOLDER}/ of this run:"
            " remove it to start the run afresh"
        )
    return url
