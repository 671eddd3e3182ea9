"""`trackday dr resume` on a real single-node swarm: a run a spot notice interrupted (its
record in the bucket, its services left at zero replicas by the node's handler) goes on under
the next model prefix, pretrained from the interrupted one (issue 17).

The fixtures are test_dr_deploy.py's: the simulator stand-in under the simulator's name, the
stack's S3 server container, a project folder with the local stack's outputs.
"""

from __future__ import annotations

import json
import time

import docker

from tests.e2e import test_dr_deploy as deploy
from tests.e2e.test_dr_deploy import docker_test, left_behind, services_of, spec_of

# test_dr_deploy.py's fixtures, used here under their own names.
simulator_image, s3_container, project = deploy.simulator_image, deploy.s3_container, deploy.project

RUN_ID = 94
PREFIX = "e2e-spot"


def handler_record(checkpoint: str) -> bytes:
    """As the node's handler writes it (infra/bootstrap/spot.py)."""
    record = {"run_id": RUN_ID, "model_prefix": PREFIX, "node": "manager",
              "notice": "2026-11-30T20:30:00Z preempted", "checkpoint": checkpoint,
              "iteration": int(checkpoint.split("_")[0])}  # fmt: skip
    return json.dumps(record).encode()


def scale_to_zero(client: docker.DockerClient, service_id: str, timeout_s: float = 60) -> None:
    """As the node's handler does (`docker service scale`): the engine refuses an update made
    against a version it has moved past while the service starts; read it again."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.services.get(service_id).scale(0)
            return
        except docker.errors.APIError as error:
            if "out of sequence" not in str(error) or time.monotonic() > deadline:
                raise


def env_of(service: dict) -> dict[str, str]:
    return dict(item.split("=", 1) for item in spec_of(service)["ContainerSpec"]["Env"])


@docker_test
def test_an_interrupted_run_resumes_under_the_next_prefix(
    swarm, simulator_image, s3_container, project
):
    project.stack("spot", runId=RUN_ID, modelPrefix=PREFIX, workers=1)
    try:
        started = project.dr("start-training", "spot", "-q")
        assert started.exit_code == 0, started.output
        for service in services_of(swarm, RUN_ID).values():  # what the handler leaves
            scale_to_zero(swarm, service["ID"])
        record = handler_record("7_Step-2800.ckpt")
        project.server.put(project.bucket, f"{PREFIX}/interruption.json", record)
        status = project.dr("status", "spot")
        assert "Interrupted DeepRacer runs" in status.output and "7_Step-2800.ckpt" in status.output
        assert f"trackday dr resume --stack spot --prefix {PREFIX}" in status.output

        resumed = project.dr("resume", "spot")
        assert resumed.exit_code == 0, resumed.output
        said = f"{PREFIX} (checkpoint 7_Step-2800.ckpt, iteration 7) -> {PREFIX}-1"
        assert said in " ".join(resumed.output.split())  # as the console wrapped it
        services = services_of(swarm, RUN_ID)
        trainer = services[f"trackday-dr-{RUN_ID}-trainer"]
        env = env_of(trainer)
        assert env["MODEL_S3_PREFIX"] == f"{PREFIX}-1" and env["PRETRAINED"] == "True"
        assert env["PRETRAINED_S3_PREFIX"] == PREFIX and env["PRETRAINED_CHECKPOINT"] == "last"
        assert all(s["Spec"]["Mode"]["Replicated"]["Replicas"] == 1 for s in services.values())
        assert f"{PREFIX}-1/training_params.yaml" in project.objects()
        link = json.loads(project.read(f"{PREFIX}-1/resumed-from.json"))
        assert link["model_prefix"] == PREFIX and link["checkpoint"] == "7_Step-2800.ckpt"
        old = json.loads(project.read(f"{PREFIX}/interruption.json"))
        assert old["resumed_to"] == f"{PREFIX}-1"
        assert "Interrupted DeepRacer runs" not in project.dr("status", "spot").output

        again = project.dr("resume", "spot")
        assert again.exit_code != 0 and f"already resumed as {PREFIX}-1" in again.output
    finally:
        project.dr("stop-training", "spot")
    assert left_behind(swarm, (RUN_ID,), simulator_image) == []


@docker_test
def test_a_resume_the_node_prepared_starts_under_the_prepared_prefix(
    swarm, simulator_image, s3_container, project
):
    """The node never came back: `dr resume` on this stack takes the prefix its handler
    prepared (which holds only the files the handler wrote) rather than the one after it."""
    prefix = "e2e-prep"
    project.stack("prep", runId=RUN_ID - 1, modelPrefix=prefix, workers=1)
    record = json.loads(handler_record("4_Step-100.ckpt")) | {
        "run_id": RUN_ID - 1, "model_prefix": prefix, "prepared": f"{prefix}-1"
    }  # fmt: skip
    project.server.put(project.bucket, f"{prefix}/interruption.json", json.dumps(record).encode())
    for name in ("training_params.yaml", "reward_function.py", "resumed-from.json"):
        project.server.put(project.bucket, f"{prefix}-1/{name}", b"prepared by the node\n")
    try:
        resumed = project.dr("resume", "prep")
        assert resumed.exit_code == 0, resumed.output
        trainer = services_of(swarm, RUN_ID - 1)[f"trackday-dr-{RUN_ID - 1}-trainer"]
        assert env_of(trainer)["MODEL_S3_PREFIX"] == f"{prefix}-1"
        assert project.read(f"{prefix}-1/training_params.yaml") != b"prepared by the node\n"
        link = json.loads(project.read(f"{prefix}-1/resumed-from.json"))
        assert link["model_prefix"] == prefix
    finally:
        project.dr("stop-training", "prep")
    assert left_behind(swarm, (RUN_ID - 1,), simulator_image) == []


@docker_test
def test_a_run_of_another_stacks_bucket_is_copied_here_and_resumed(
    swarm, simulator_image, s3_container, project, tmp_path
):
    """Where the spot capacity is gone: the run is resumed on this stack, whose bucket is not
    the interrupted run's; its checkpoint is copied here first, under its own prefix."""
    prefix, gone_bucket = "e2e-gone", project.server.create_bucket()
    project.stack("gone", runId=RUN_ID - 2, modelPrefix=prefix)
    project.stack("here", runId=RUN_ID - 2, modelPrefix=prefix, workers=1)
    gone = json.loads(project.outputs.read_text()) | {"bucketUrl": f"s3://{gone_bucket}"}
    (tmp_path / "gone.json").write_text(json.dumps(gone))
    record = json.loads(handler_record("3_Step-1200.ckpt")) | {
        "run_id": RUN_ID - 2, "model_prefix": prefix, "prepared": f"{prefix}-1"
    }  # fmt: skip
    ckpt = {"name": "3_Step-1200.ckpt"}
    files = {
        "interruption.json": json.dumps(record).encode(),
        "model/deepracer_checkpoints.json": json.dumps(
            {"best_checkpoint": ckpt, "last_checkpoint": ckpt}
        ).encode(),
        "model/.coach_checkpoint": b'model_checkpoint_path: "3_Step-1200.ckpt"\n',
        "model/3_Step-1200.ckpt.index": b"index",
        "model/3_Step-1200.ckpt.meta": b"meta",
        "model/3_Step-1200.ckpt.data-00000-of-00001": b"weights",
    }
    for key, body in files.items():
        project.server.put(gone_bucket, f"{prefix}/{key}", body)
    try:
        args = ("--from-stack", "gone", "--from-outputs", str(tmp_path / "gone.json"))
        resumed = project.dr("resume", "here", *args)
        assert resumed.exit_code == 0, resumed.output
        assert f"from s3://{gone_bucket}" in " ".join(resumed.output.split())
        # The trainer starts here, pretrained from the copy in this stack's bucket.
        trainer = services_of(swarm, RUN_ID - 2)[f"trackday-dr-{RUN_ID - 2}-trainer"]
        env = env_of(trainer)
        assert env["MODEL_S3_PREFIX"] == f"{prefix}-1" and env["PRETRAINED_S3_PREFIX"] == prefix
        assert env["PRETRAINED_S3_BUCKET"] == project.bucket
        for key, body in files.items():
            if key.startswith("model/"):
                assert project.read(f"{prefix}/{key}") == body
        origin = json.loads(project.read(f"{prefix}/copied-from.json"))
        assert origin["bucket"] == f"s3://{gone_bucket}"
        link = json.loads(project.read(f"{prefix}-1/resumed-from.json"))
        assert link["model_prefix"] == prefix and link["prepared"] is None
    finally:
        project.dr("stop-training", "here")
    assert left_behind(swarm, (RUN_ID - 2,), simulator_image) == []
