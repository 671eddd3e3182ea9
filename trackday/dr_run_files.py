"""A DeepRacer run's objects in the bucket, for the `trackday dr` commands: the custom files
and params a start writes (DRfC's dr-upload-custom-files and the params half of
dr-start-training) and the model an upload copies to another bucket. The swarm side is
trackday/dr_runs.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from infra.workloads.run_target import RunTarget
from trackday.errors import RunError
from training import storage
from training.deepracer import bucket_io
from training.deepracer.layout import RunLayout
from training.deepracer.model_upload import UploadPlan
from training.deepracer.params import evaluation_files, training_files
from training.deepracer.settings import DeepRacerSettings


def upload_training_files(
    settings: DeepRacerSettings, target: RunTarget, custom_files: Path, wipe: bool
) -> list[str]:
    """dr-upload-custom-files plus the params half of dr-start-training, with its `-w` rule."""
    with storage.environment(target.storage_env):
        bucket_io.claim_prefix(target.bucket_url, settings.model_prefix, wipe, "pass --wipe")
        files = training_files(settings, target.bucket, custom_files)
        return bucket_io.write_objects(target.bucket_url, files)


def upload_evaluation_files(settings: DeepRacerSettings, target: RunTarget) -> tuple[str, list]:
    """`evaluation_params.yaml` for an evaluation starting now; returns its stamp and URLs."""
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    with storage.environment(target.storage_env):
        model = RunLayout.of(settings).model_dir
        if not storage.exists(storage.join(target.bucket_url, model)):
            raise RunError(
                f"{target.bucket_url}/{model} does not exist: evaluate a trained "
                "model (check modelPrefix)"
            )
        files = evaluation_files(settings, target.bucket, stamp)
        return stamp, bucket_io.write_objects(target.bucket_url, files)


def copy_model(
    source_url: str,
    target_url: str,
    target_prefix: str,
    plan: UploadPlan,
    source_env: Mapping[str, str],
    target_env: Mapping[str, str],
    wipe: bool = False,
) -> list[str]:
    """Carry out an upload plan: stream from the run's bucket to the upload bucket
    (`target_url`; each side with its own endpoint and credentials); returns the keys."""
    source, target = storage.Endpoint.from_env(source_env), storage.Endpoint.from_env(target_env)
    copies = {dest: storage.join(source_url, key) for dest, key in plan.copies.items()}
    for url in copies.values():  # all there before the target is touched
        if not storage.exists(url, endpoint=source):
            raise storage.StorageError(f"{url}: no such object")
    with storage.environment(target_env):
        if wipe:
            bucket_io.delete_prefix(target_url, target_prefix)
        for dest, url in copies.items():
            storage.copy(
                url,
                storage.join(target_url, dest),
                source_endpoint=source,
                target_endpoint=target,
                sidecar=False,
            )
        bucket_io.write_objects(target_url, plan.writes)
    return sorted({*copies, *plan.writes})
