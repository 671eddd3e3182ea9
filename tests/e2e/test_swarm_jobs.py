"""One-shot Swarm jobs on this machine's Docker engine, as `trackday donkey submit` runs them.

The engine is made a single-node swarm manager (if it is not one already; other tests share
it, so it never leaves), labelled as the trainer node. Jobs run a tiny image made here from
Debian's busybox-static (no registry is reachable). Every test checks that nothing is left.
"""

from __future__ import annotations

import _thread
import hashlib
import re
import secrets
import signal
import subprocess
import time

import docker
import pytest

from contract.swarm import CREDENTIALS_FILE, GPU_RESOURCE, ROLE_LABEL, WORKLOAD_LABEL
from trackday import swarm_jobs
from trackday.swarm_jobs import JobResult, S3Credentials, SwarmJob, SwarmJobError

pytestmark = [pytest.mark.docker, pytest.mark.timeout(300)]


def new_job(image: str, script: str, **fields) -> SwarmJob:
    return SwarmJob(
        name=f"td-test-{secrets.token_hex(4)}", image=image, args=("sh", "-c", script), **fields
    )


def left_behind(client: docker.DockerClient, job: SwarmJob) -> list[str]:
    """Services and secrets of `job` still there, and its containers still running 30 s on.

    The service and its secret must be gone when `run_job` returns; the engine then stops
    the task's container by itself (SIGTERM, then SIGKILL after its grace period).
    """
    label = f"{swarm_jobs.JOB_LABEL}={job.name}"
    services = [s["Spec"]["Name"] for s in client.api.services(filters={"label": label})]
    found = [s["Spec"]["Name"] for s in client.api.secrets(filters={"name": job.name})]
    deadline = time.monotonic() + 30
    while (running := client.containers.list(filters={"label": label})) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.5)
    return services + found + [c.name for c in running]


def run(client: docker.DockerClient, job: SwarmJob, **options) -> tuple[JobResult, list[str]]:
    lines: list[str] = []
    result = swarm_jobs.run_job(client, job, lines.append, **options)
    return result, lines


def test_a_successful_job_reports_success_with_its_logs_in_order(swarm, busybox_image) -> None:
    script = "for i in $(seq 1 300); do echo line $i; done; echo to stderr >&2"
    job = new_job(busybox_image, script)
    result, lines = run(swarm, job)
    assert result.succeeded, result
    assert (result.state, result.exit_code) == ("complete", 0)
    # Every line exactly once, in order, whatever the follower saw before the task ended.
    assert [line for line in lines if line.startswith("line ")] == [
        f"line {i}" for i in range(1, 301)
    ]
    assert "to stderr" in lines
    assert left_behind(swarm, job) == []


def test_a_failing_job_reports_its_exit_code_and_leaves_nothing(swarm, busybox_image) -> None:
    job = new_job(busybox_image, "echo about to fail; exit 3")
    result, lines = run(swarm, job)
    assert not result.succeeded
    assert (result.state, result.exit_code) == ("failed", 3)
    assert "non-zero exit (3)" in result.message
    assert lines == ["about to fail"]
    assert left_behind(swarm, job) == []


def test_job_container_is_read_only_with_a_tmpfs_and_the_workload_label(
    swarm, busybox_image
) -> None:
    script = (
        "touch /tmp/scratch && echo tmp writable; touch /root-file 2>/dev/null || echo root"
        ' read-only; echo "$TRACKDAY_RUN"'
    )
    job = new_job(busybox_image, script, env={"TRACKDAY_RUN": "r-42"})
    lines: list[str] = []
    workloads: list[str | None] = []

    def on_line(line: str) -> None:
        lines.append(line)
        if line == "r-42":  # the task's container, still there until the job is removed
            label = f"{swarm_jobs.JOB_LABEL}={job.name}"
            for container in swarm.api.containers(filters={"label": label}, all=True):
                workloads.append(container["Labels"].get(WORKLOAD_LABEL))

    result = swarm_jobs.run_job(swarm, job, on_line)
    assert result.succeeded, result
    assert lines == ["tmp writable", "root read-only", "r-42"]
    assert workloads == ["donkeycar-train"]


def test_credentials_arrive_as_a_secret_file_and_the_secret_is_removed(
    swarm, busybox_image
) -> None:
    credentials = S3Credentials("AKIATRACKDAYTEST0001", "s3cr3t-Value-that-must-not-leak")
    expected = hashlib.sha256(credentials.credentials_file()).hexdigest()
    job = new_job(busybox_image, 'sha256sum "$AWS_SHARED_CREDENTIALS_FILE"; env')
    result, lines = run(swarm, job, credentials=credentials)
    assert result.succeeded, result
    assert lines[0] == f"{expected}  {swarm_jobs.CREDENTIALS_PATH}"
    assert not any(credentials.secret_access_key in line for line in lines)  # not in the env
    assert left_behind(swarm, job) == []


def test_a_job_no_node_can_take_is_given_up_and_removed(swarm, busybox_image) -> None:
    job = new_job(busybox_image, "echo never", role="simulation")
    result, lines = run(swarm, job, placement_timeout_s=3, poll_s=0.5)
    assert not result.succeeded and result.exit_code is None
    assert result.state == "pending"
    assert "not placed after 3 s" in result.message
    assert f"{ROLE_LABEL}=simulation" in result.message
    assert lines == []
    assert left_behind(swarm, job) == []


@pytest.fixture
def sigint_handled():
    """Python's own SIGINT handler for the test. A process started in the background by a
    non-interactive shell (as CI starts the suite) inherits SIGINT ignored, and then Python
    installs no handler and `_thread.interrupt_main()` does nothing: the interrupt "never
    arrived" and the job ran its full two minutes."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_removes_the_running_job(swarm, busybox_image, sigint_handled) -> None:
    job = new_job(busybox_image, "echo started; sleep 120")
    lines: list[str] = []

    def interrupt_once_started(line: str) -> None:
        """Ctrl-C as the first line arrives (no timer: the main thread takes it at its next
        step, whatever the machine's load)."""
        lines.append(line)
        _thread.interrupt_main()

    with pytest.raises(KeyboardInterrupt):
        swarm_jobs.run_job(swarm, job, interrupt_once_started)
    assert lines == ["started"]
    assert left_behind(swarm, job) == []


def test_missing_image_is_reported_as_rejected(swarm) -> None:
    job = new_job("trackday-no-such-image:never", "true")
    result, _ = run(swarm, job)
    assert not result.succeeded
    assert result.state in {"rejected", "failed"}
    assert result.message
    assert left_behind(swarm, job) == []


def test_service_spec_is_a_one_shot_job_placed_by_role() -> None:
    job = SwarmJob(
        name="trackday-train-r1",
        image="trackday-donkeycar:1",
        args=("--data", "s3://b/tubs/a.tar.zst", "--output", "s3://b/runs/r1"),
        env={"AWS_ENDPOINT_URL": "http://10.0.1.4:9000"},
        gpus=1,
    )
    spec = swarm_jobs.service_spec(job)
    template = spec["task_template"]
    assert spec["name"] == "trackday-train-r1"
    assert spec["mode"] == {"replicated": {"Replicas": 1}}
    assert template["RestartPolicy"]["Condition"] == "none"
    assert template["Placement"]["Constraints"] == ["node.labels.trackday.role==trainer"]
    assert template["Networks"] == [{"Target": "host"}]
    assert template["Resources"]["Reservations"]["GenericResources"] == [
        {"DiscreteResourceSpec": {"Kind": GPU_RESOURCE, "Value": 1}}
    ]
    container = template["ContainerSpec"]
    assert container["Args"] == list(job.args)
    assert container["Env"] == ["AWS_ENDPOINT_URL=http://10.0.1.4:9000"]
    assert container["Labels"][WORKLOAD_LABEL] == "donkeycar-train"
    assert container["ReadOnly"] is True
    assert "Secrets" not in container
    with_secret = swarm_jobs.service_spec(job, credentials_secret_id="abc123")
    secret_ref = with_secret["task_template"]["ContainerSpec"]["Secrets"][0]
    assert secret_ref["SecretID"] == "abc123"
    assert secret_ref["File"]["Name"] == CREDENTIALS_FILE
    assert (
        f"AWS_SHARED_CREDENTIALS_FILE={swarm_jobs.CREDENTIALS_PATH}"
        in with_secret["task_template"]["ContainerSpec"]["Env"]
    )
    assert (
        "Resources" not in swarm_jobs.service_spec(SwarmJob(name="cpu", image="x"))["task_template"]
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "-bad name"}, "job name '-bad name' is not a valid service name"),
        ({"role": "boss"}, "job role 'boss' is not one of trainer, simulation"),
        ({"gpus": -1}, "job GPU count -1 must be 0 or more"),
        ({"env": {"1X": "y"}}, "environment variable name '1X' is not valid"),
        ({"env": {"AWS_SECRET_ACCESS_KEY": "k"}}, "AWS_SECRET_ACCESS_KEY must not be passed"),
    ],
)
def test_bad_jobs_are_refused_with_a_clear_message(fields: dict, message: str) -> None:
    with pytest.raises(SwarmJobError, match=re.escape(message)):
        SwarmJob(**{"name": "ok", "image": "x", **fields})


def test_docker_cli_sees_the_same_swarm(swarm) -> None:
    state = subprocess.run(
        ["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert state == "active"
