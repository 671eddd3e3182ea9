"""DonkeyCar training as a Vertex AI custom job: the job spec (pure), creating it, following it.

pulumi-gcp has no custom-job resource: the gcp stack provisions the bucket, the trainer
service account and image, and this module creates one job per run with the
google-cloud-aiplatform SDK, running the trainer image as that service account.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trackday.run_options import RunOptions
from trackday.stack import GcpOutputs

TERMINAL_STATES = {
    "JOB_STATE_SUCCEEDED",
    "JOB_STATE_FAILED",
    "JOB_STATE_CANCELLED",
    "JOB_STATE_EXPIRED",
    "JOB_STATE_PARTIALLY_SUCCEEDED",
}
BOOT_DISK_TYPE = "pd-ssd"


def custom_job_spec(
    outputs: GcpOutputs,
    data_url: str,
    output_url: str,
    run_id: str,
    stack: str,
    options: RunOptions | None = None,
) -> dict[str, Any]:
    """The CustomJob for one training run, as the field names of aiplatform_v1.CustomJob.

    The trainer writes under `<output_url>/<run_id>/`; `run_id` is chosen here so that
    `submit` can tell where the model will be before the job starts.
    """
    training = outputs.training
    args = (options or RunOptions()).trainer_args(
        data_url,
        output_url,
        run_id,
        training.model_type,
        training.overrides,
        training.accelerator_count,
    )
    scheduling: dict[str, Any] = {"strategy": "SPOT" if training.spot else "ON_DEMAND"}
    if training.max_run_hours:
        scheduling["timeout"] = {"seconds": int(training.max_run_hours * 3600)}
    return {
        "display_name": f"trackday-donkeycar-{run_id}",
        "labels": {"trackday-stack": _label(stack), "trackday-run": _label(run_id)},
        "job_spec": {
            "worker_pool_specs": [
                {
                    "machine_spec": {
                        "machine_type": training.machine_type,
                        "accelerator_type": training.accelerator_type,
                        "accelerator_count": training.accelerator_count,
                    },
                    "replica_count": 1,
                    "disk_spec": {
                        "boot_disk_type": BOOT_DISK_TYPE,
                        "boot_disk_size_gb": training.boot_disk_gb,
                    },
                    "container_spec": {"image_uri": outputs.image, "args": args},
                }
            ],
            "service_account": outputs.trainer_service_account,
            "scheduling": scheduling,
        },
    }


def log_filter(job_name: str) -> str:
    """Cloud Logging filter for a custom job's container logs."""
    job_id = job_name.rsplit("/", 1)[-1]
    return f'resource.type="ml_job" AND resource.labels.job_id="{job_id}"'


@dataclass(frozen=True)
class JobStatus:
    name: str
    state: str
    error: str


class VertexJobs:
    """Creates and watches custom jobs in one project and region (the stack's)."""

    def __init__(
        self,
        project: str,
        region: str,
        client: Any = None,
        logs: Any = None,
        logging_endpoint: str = "https://logging.googleapis.com",
    ):
        """`client` (a JobServiceClient) and `logs` (an authorized requests session) are made
        on first use with this machine's Google credentials unless given."""
        self.project = project
        self.region = region
        self._client = client
        self._logs = logs
        self.logging_endpoint = logging_endpoint

    @property
    def client(self):
        if self._client is None:
            from google.cloud import aiplatform_v1  # slow to import: only when a job is made

            self._client = aiplatform_v1.JobServiceClient(
                client_options={"api_endpoint": f"{self.region}-aiplatform.googleapis.com"}
            )
        return self._client

    def create(self, spec: dict[str, Any]) -> str:
        """Create the job; returns its resource name."""
        from google.cloud import aiplatform_v1

        job = self.client.create_custom_job(
            parent=f"projects/{self.project}/locations/{self.region}",
            custom_job=aiplatform_v1.CustomJob(spec),
        )
        return job.name

    def status(self, name: str) -> JobStatus:
        job = self.client.get_custom_job(name=name)
        return JobStatus(name=job.name, state=job.state.name, error=job.error.message)

    def log_lines(self, name: str, since: str) -> list[tuple[str, str]]:
        """(timestamp, text) of the job's log entries after `since` (RFC 3339), oldest first."""
        session = self._log_session()
        body = {
            "resourceNames": [f"projects/{self.project}"],
            "filter": f'{log_filter(name)} AND timestamp>"{since}"',
            "orderBy": "timestamp asc",
            "pageSize": 1000,
        }
        response = session.post(f"{self.logging_endpoint}/v2/entries:list", json=body, timeout=60)
        response.raise_for_status()
        lines = []
        for entry in response.json().get("entries", []):
            payload = entry.get("textPayload") or entry.get("jsonPayload", {}).get("message", "")
            lines.append((entry["timestamp"], str(payload).rstrip("\n")))
        return lines

    def _log_session(self):
        if self._logs is None:
            import google.auth
            from google.auth.transport.requests import AuthorizedSession

            credentials, _ = google.auth.default(
                scopes=["https://www.googleapis.com/auth/logging.read"]
            )
            self._logs = AuthorizedSession(credentials)
        return self._logs


def follow(
    jobs: VertexJobs,
    name: str,
    emit: Callable[[str], None],
    poll_seconds: float = 15.0,
    sleep: Callable[[float], None] = time.sleep,
) -> JobStatus:
    """Print the job's logs as they come until the job ends; returns its final status."""
    since = "1970-01-01T00:00:00Z"
    last_state = ""
    logs_work = True
    while True:
        status = jobs.status(name)
        if status.state != last_state:
            emit(f"job state: {status.state.removeprefix('JOB_STATE_').lower()}")
            last_state = status.state
        lines: list[tuple[str, str]] = []
        if logs_work:
            try:
                lines = jobs.log_lines(name, since)
            except Exception as exc:  # logs are a convenience: the job's state decides
                emit(f"(logs unavailable, following the job's state only: {exc})")
                logs_work = False
        for stamp, text in lines:
            emit(text)
            since = stamp
        if status.state in TERMINAL_STATES:
            return status
        sleep(poll_seconds)


def _label(value: str) -> str:
    """A GCP label value: lowercase letters, digits, '-' and '_', at most 63 characters."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in value.lower())[:63]
