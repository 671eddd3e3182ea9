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

from trackday.errors import TrackdayError
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
# Cloud Logging delivers a container's last lines (the traceback of a failed run) up to about
# a minute after they were written, so following goes on after the job has ended.
DRAIN_SECONDS = 90.0
QUIET_POLLS = 2
LOG_PAGE_SIZE = 1000


class VertexError(TrackdayError):
    """A Google API refused a call; the message is one line naming the fix."""


# What each refusal means for `submit`, by HTTP status (google.api_core's exception codes).
_FIXES = {
    400: "Vertex AI refused the request as invalid",
    401: "not signed in to Google Cloud: run `gcloud auth application-default login`",
    403: (
        "permission denied: the account running `trackday donkey submit` needs the roles "
        "Vertex AI User (roles/aiplatform.user) and Logs Viewer (roles/logging.viewer) on "
        "project {project}, and the Vertex AI API enabled (`pulumi up` for the stack enables it)"
    ),
    404: "not found in project {project}, region {region}: is the stack deployed (`pulumi up`)?",
    429: (
        "quota exceeded in {region}: request more (GPU) quota for Vertex AI custom training "
        "in the Cloud console (IAM & Admin > Quotas), or choose another region or GPU"
    ),
}


def explain(exc: Exception, project: str, region: str) -> VertexError:
    """One line for a refused Google API call: what it means and what to do."""
    code = getattr(exc, "code", None)
    if code is None:  # a requests HTTPError from Cloud Logging
        code = getattr(getattr(exc, "response", None), "status_code", None)
    message = getattr(exc, "message", None) or str(exc)
    message = " ".join(str(message).split())
    fix = _FIXES.get(int(code)) if isinstance(code, int) else None
    if fix is None:
        return VertexError(f"Google Cloud API error {code or ''}: {message}".replace("  ", " "))
    return VertexError(f"{fix.format(project=project, region=region)} ({message})")


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
        from google.api_core import exceptions
        from google.cloud import aiplatform_v1

        try:
            job = self.client.create_custom_job(
                parent=f"projects/{self.project}/locations/{self.region}",
                custom_job=aiplatform_v1.CustomJob(spec),
            )
        except exceptions.GoogleAPICallError as exc:
            raise explain(exc, self.project, self.region) from None
        return job.name

    def status(self, name: str) -> JobStatus:
        from google.api_core import exceptions

        try:
            job = self.client.get_custom_job(name=name)
        except exceptions.GoogleAPICallError as exc:
            raise explain(exc, self.project, self.region) from None
        return JobStatus(name=job.name, state=job.state.name, error=job.error.message)

    def log_entries(self, name: str, since: str) -> list[tuple[str, str, str]]:
        """(insert id, timestamp, text) of the job's log entries from `since` (RFC 3339) on,
        oldest first, every page of them (entries.list pages by `nextPageToken`)."""
        import requests

        session = self._log_session()
        body: dict[str, Any] = {
            "resourceNames": [f"projects/{self.project}"],
            # >=: entries sharing the last timestamp shown may arrive later; ids tell them apart.
            "filter": f'{log_filter(name)} AND timestamp>="{since}"',
            "orderBy": "timestamp asc",
            "pageSize": LOG_PAGE_SIZE,
        }
        entries: list[tuple[str, str, str]] = []
        while True:
            try:
                response = session.post(
                    f"{self.logging_endpoint}/v2/entries:list", json=body, timeout=60
                )
                response.raise_for_status()
            except requests.HTTPError as exc:
                raise explain(exc, self.project, self.region) from None
            page = response.json()
            for entry in page.get("entries", []):
                payload = entry.get("textPayload") or entry.get("jsonPayload", {}).get(
                    "message", ""
                )
                key = entry.get("insertId") or f"{entry['timestamp']}:{payload}"
                entries.append((key, entry["timestamp"], str(payload).rstrip("\n")))
            token = page.get("nextPageToken")
            if not token:
                return entries
            body["pageToken"] = token

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
    drain_seconds: float = DRAIN_SECONDS,
) -> JobStatus:
    """Print the job's logs as they come until the job ends, then the last lines Cloud
    Logging delivers late (until QUIET_POLLS polls in a row bring nothing, at most
    `drain_seconds`); returns the job's final status."""
    logs = _LogFollower(jobs, name, emit)
    last_state = ""
    while True:
        status = jobs.status(name)
        if status.state != last_state:
            emit(f"job state: {status.state.removeprefix('JOB_STATE_').lower()}")
            last_state = status.state
        logs.poll()
        if status.state in TERMINAL_STATES:
            break
        sleep(poll_seconds)
    waited, quiet = 0.0, 0
    while logs.working and waited < drain_seconds and quiet < QUIET_POLLS:
        step = min(poll_seconds, drain_seconds - waited)
        sleep(step)
        waited += step
        quiet = 0 if logs.poll() else quiet + 1
    return status


class _LogFollower:
    """Emits each log entry once, in order, whatever pages and polls bring it."""

    def __init__(self, jobs: VertexJobs, name: str, emit: Callable[[str], None]) -> None:
        self.jobs, self.name, self.emit = jobs, name, emit
        self.since = "1970-01-01T00:00:00Z"
        self.seen: set[str] = set()
        self.working = True

    def poll(self) -> int:
        """Emit the entries not shown yet; how many there were."""
        if not self.working:
            return 0
        try:
            entries = self.jobs.log_entries(self.name, self.since)
        except VertexError as exc:  # logs are a convenience: the job's state decides
            self.emit(f"(logs unavailable, following the job's state only: {exc})")
            self.working = False
            return 0
        new = [(key, stamp, text) for key, stamp, text in entries if key not in self.seen]
        for key, stamp, text in new:
            self.seen.add(key)
            self.emit(text)
            self.since = max(self.since, stamp)
        return len(new)


def _label(value: str) -> str:
    """A GCP label value: lowercase letters, digits, '-' and '_', at most 63 characters."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in value.lower())[:63]
