"""The `manage.py drive` lines for a finished DonkeyCar run, as donkeycar's
templates/complete.py takes them: a `.tflite` drives as `tflite_<type>`, a `.keras`, `.h5`
or `.savedmodel` as the type it was trained as. Printed by `fetch` and `to-car`."""

from __future__ import annotations

import json
from pathlib import Path

from training.donkeycar.train import RUN_MANIFEST


def drive_commands(run_dir: Path, models_dir: str = "models") -> list[str]:
    """`manage.py drive` lines for the run's model files, best for a Raspberry Pi first."""
    manifest = json.loads((run_dir / RUN_MANIFEST).read_text())
    model, tflite, model_type = (manifest.get(k) for k in ("model", "tflite", "model_type"))
    if not (model and model_type):
        return []  # a run from before the manifest named its model
    lines = []
    if tflite:
        lines.append(
            f"python manage.py drive --model {models_dir}/{tflite} --type tflite_{model_type}"
        )
    lines.append(f"python manage.py drive --model {models_dir}/{model} --type {model_type}")
    return lines
