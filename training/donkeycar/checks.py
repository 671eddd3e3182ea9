"""The checks before a run trains: the tubs, the framework, the records a model type reads, the GPU.

Each fails with what is wrong and how to fix it, seconds into a run rather than an hour.
"""

from __future__ import annotations

import logging

from training.donkeycar import model_types
from training.donkeycar.archive import refuse_problems
from training.donkeycar.extract import ExtractedArchive
from training.donkeycar.tub import MANIFEST, TubScan, scan_tub

log = logging.getLogger("trackday.train")


class TrainerError(Exception):
    """A run that cannot go on; the message says what is wrong and how to fix it."""


def check_tubs(extracted: ExtractedArchive, skip_bad: bool) -> list[TubScan]:
    """Check the tubs as `trackday donkey archive` does: old-format archives were never checked."""
    scans = [scan_tub(tub) for tub in extracted.tubs]
    refuse_problems(scans, skip_bad)
    for scan in scans:
        if scan.needs_rewrite:
            (scan.path / MANIFEST).write_bytes(scan.manifest_with_deleted(scan.bad_indexes))
            log.warning("%s: skipping %d bad record(s)", scan.path.name, len(scan.bad_indexes))
        for catalog in scan.empty_catalogs:
            log.warning(
                "%s: leaving out %s (empty: donkeycar cannot read it)", scan.path.name, catalog
            )
    return scans


def check_framework(cfg, model_type: str) -> None:
    """Refuse a PyTorch run: training it with TensorFlow would give the car the wrong model.

    donkeycar 5.3.0 and 5.4.0 train `DEFAULT_AI_FRAMEWORK = 'pytorch'` with
    `donkeycar/parts/pytorch/torch_train.py`, which needs the `donkeycar[torch]` extra (not in
    this image) and pins `pl.Trainer(accelerator='cpu')`: never on the GPU this job pays for.
    """
    framework = getattr(cfg, "DEFAULT_AI_FRAMEWORK", "tensorflow")
    if framework == "pytorch" or model_type.startswith("fastai_"):
        raise TrainerError(
            f"the car config asks for PyTorch (DEFAULT_AI_FRAMEWORK={framework!r}, model type "
            f"{model_type}): trackday trains donkeycar's TensorFlow models only, since "
            "donkeycar's PyTorch trainer runs on the CPU alone. Set "
            "DEFAULT_AI_FRAMEWORK = 'tensorflow' in myconfig.py (or --set "
            "DEFAULT_AI_FRAMEWORK=tensorflow) and a TensorFlow model type, or train with "
            "`donkey train --framework pytorch` on your own machine"
        )
    if framework != "tensorflow":
        raise TrainerError(
            f"DEFAULT_AI_FRAMEWORK={framework!r} is not a donkeycar framework: use 'tensorflow'"
        )


def check_record_keys(scans: list[TubScan], model_type: str) -> None:
    """Refuse before training when the records lack what the model type reads."""
    problem = model_types.record_keys_problem(model_type, (r for s in scans for r in s.records))
    if problem:
        raise TrainerError(problem)


def require_gpu() -> None:
    """Fail within seconds when a run meant for a GPU would train on the CPU for hours."""
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        cuda = "a CUDA build" if tf.test.is_built_with_cuda() else "a build without CUDA"
        raise TrainerError(
            f"this run needs a GPU but TensorFlow {tf.__version__} ({cuda}) sees none: check "
            "the machine's NVIDIA driver (nvidia-smi) and that the container was started "
            "with the GPU (docker --gpus, or the job's accelerator); --allow-cpu trains on "
            "the CPU anyway"
        )


def constant_predictor_loss(scans: list[TubScan], model_type: str) -> float | None:
    """The model's own loss when always predicting the mean, None where that is no MSE."""
    records = [r for s in scans for r in s.records]
    return model_types.constant_predictor_loss(
        model_type,
        [float(r["user/angle"]) for r in records],
        [float(r["user/throttle"]) for r in records],
    )
