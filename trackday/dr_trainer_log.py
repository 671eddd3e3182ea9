"""Keep the trainer's log in the bucket when a training run stops: its policy-training lines
(entropy, KL divergence, surrogate loss per iteration) are in no other file, and the
containers that hold it go when the run stops.

The log is the SageMaker container's own, the one DRfC's `dr-logs-sagemaker` follows (`docker
logs` of the compose service `algo-*` that rl_coach's SageMaker local mode started for this
model prefix, found as trackday.dr_runs.sagemaker_containers finds it). It goes to
`<prefix>/logs/training/trackday-run-<run id>-sagemaker.log`, beside where the DeepRacer
console's downloaded logs keep theirs (`logs/training/<job>-sagemaker.log`), so the dashboard
reads both alike (training/deepracer/policy_log.py).
"""

from __future__ import annotations

import docker
import docker.errors

from infra.workloads.run_target import RunTarget
from trackday import dr_runs
from training import storage
from training.deepracer.policy_log import TRAINER_LOGS
from training.deepracer.settings import DeepRacerSettings


def log_key(model_prefix: str, run_id: int) -> str:
    return f"{model_prefix}/logs/training/trackday-run-{run_id}-{TRAINER_LOGS}"


def save(
    client: docker.DockerClient, model_prefix: str, run_id: int, bucket_url: str
) -> str | None:
    """Write the SageMaker containers' log to the bucket (storage's environment in force);
    the URL written, or None when there is no container or its log cannot be read (a log
    driver that only sends, as awslogs)."""
    parts = []
    for container in dr_runs.sagemaker_containers(client, model_prefix):
        try:
            parts.append(container.logs(stdout=True, stderr=True))
        except docker.errors.APIError:
            continue
    if not parts:
        return None
    url = storage.join(bucket_url, log_key(model_prefix, run_id))
    storage.write_text(url, b"".join(parts).decode("utf-8", "replace"))
    return url


def keep(client: docker.DockerClient, settings: DeepRacerSettings, target: RunTarget) -> str:
    """`save` for `trackday dr stop-training`, as the line it prints: a bucket that cannot be
    written does not keep the run from stopping."""
    try:
        with storage.environment(target.storage_env):
            saved = save(client, settings.model_prefix, settings.run_id, target.bucket_url)
    except storage.StorageError as error:
        return f"the trainer's log could not be saved: {error}"
    return f"trainer log saved to {saved}" if saved else "no trainer log to save"
