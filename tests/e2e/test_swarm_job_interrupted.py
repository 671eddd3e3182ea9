"""A Swarm job stopped by its node's spot notice is kept for the node's next boot, not removed
by its submitter (trackday/swarm_jobs.py run_job), on this machine's engine.

The node's handler (infra/bootstrap/spot.py `stop_job`) marks the job's service with
RESUME_LABEL, stops its container, and leaves the service at zero replicas; the boot's resume
script gives the replica back. Both are done here with the same docker CLI calls.
"""

from __future__ import annotations

import secrets
import subprocess
import time

import docker
import pytest

from contract.swarm import JOB_LABEL, RESUME_LABEL
from trackday import swarm_jobs
from trackday.swarm_jobs import S3Credentials, SwarmJob

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]


def cli(*args: str) -> str:
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, check=True, timeout=120
    ).stdout


def test_a_job_stopped_by_a_spot_notice_is_kept_and_runs_again_when_resumed(
    swarm: docker.DockerClient, busybox_image: str
) -> None:
    name = f"td-test-{secrets.token_hex(4)}"
    job = SwarmJob(name=name, image=busybox_image, args=("sh", "-c", "echo started; sleep 120"))
    service = None

    def notice_on_the_first_line(line: str) -> None:
        """What the node's handler does on notice, once the job runs (no timer)."""
        nonlocal service
        if service is not None:
            return
        [service] = cli("service", "ls", "-q", "--filter", f"label={JOB_LABEL}={name}").split()
        [container] = cli("ps", "-q", "--filter", f"label={JOB_LABEL}={name}").split()
        cli("service", "update", "--detach", "--label-add", f"{RESUME_LABEL}=1", service)
        cli("stop", "--time", "5", container)
        cli("service", "update", "--detach", "--replicas", "0", service)

    credentials = S3Credentials("AKIATRACKDAYTEST0002", "kept-for-the-next-attempt")
    try:
        result = swarm_jobs.run_job(swarm, job, notice_on_the_first_line, credentials)
        assert result.interrupted and not result.succeeded, result
        # Kept: the service (at zero replicas, marked) and its credentials secret.
        spec = swarm.api.inspect_service(service)["Spec"]
        assert spec["Labels"][RESUME_LABEL] == "1"
        assert spec["Mode"]["Replicated"]["Replicas"] == 0
        assert [s["Spec"]["Name"] for s in swarm.api.secrets(filters={"name": name})]
        # The next boot: the replica back, the mark gone; the job runs again.
        cli("service", "update", "--detach", "--replicas", "1", "--label-rm", RESUME_LABEL, service)

        def attempts() -> list[str]:
            return [t["Status"]["State"] for t in swarm.api.tasks(filters={"service": service})]

        deadline = time.monotonic() + 120
        while attempts().count("running") != 1:
            assert time.monotonic() < deadline, f"the job did not run again: {attempts()}"
            time.sleep(0.5)
        assert RESUME_LABEL not in swarm.api.inspect_service(service)["Spec"]["Labels"]
    finally:
        if service is not None:
            cli("service", "rm", service)
        for secret in swarm.api.secrets(filters={"name": name}):
            swarm.api.remove_secret(secret["ID"])
