"""A DonkeyCar job on a spot node: the notice stops it, its checkpoint is kept, and the node's
next boot runs it again from there, by itself (infra/bootstrap/spot.py, trackday/swarm_jobs.py,
training/donkeycar/checkpoint.py).

The shipped AWS stack's manager (spot) boots its rendered user data and reaches the metadata
stand-in (metadata_standin.py) at 169.254.169.254, as on EC2. `trackday donkey submit` runs the
real trainer image there (the e2e tests' CPU image, `docker load`ed: about 50 s), with the
bucket on the node's network (bucket.py). No AWS S3 is reachable here, so the job reaches that
bucket as an Azure stack's job reaches its S3 gateway (the outputs say `azure`: an endpoint and
keys in a Swarm secret); everything the spot path does is the AWS node's. Once donkeycar has
saved its first model, EC2's notice comes; the submitter is told and exits 75, the run is
INTERRUPTED with its checkpoint and no COMPLETE; the node reboots (its disks kept, the notice
gone) and the job completes by itself, from the checkpoint. Every step waits on a condition,
none on time.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from contract.swarm import RESUME_LABEL
from tests.nodes import aws_api, harness, standins
from tests.nodes.bucket import serve_s3_on
from tests.nodes.harness import Cluster, Node, wait_for
from tests.nodes.render import SshKey, render
from trackday.donkey_cloud import INTERRUPTED_EXIT
from training.donkeycar.archive import create_archive
from training.donkeycar.checkpoint import CHECKPOINT_FOLDER, CHECKPOINT_RECORD
from training.donkeycar.sample_tub import write_sample_tub
from training.donkeycar.train import COMPLETE, INTERRUPTED, LATEST, RUN_MANIFEST

pytestmark = [pytest.mark.docker, pytest.mark.nodes, pytest.mark.timeout(1500)]

SUBNET, MANAGER, S3 = "10.42.21.0/24", "10.42.21.10", "10.42.21.240"
AWS_API = "10.42.21.6"
# Enough epochs that the notice comes while it fits; no early stop (patience = every epoch).
EPOCHS = 15
SMALL = {
    "MAX_EPOCHS": EPOCHS,
    "EARLY_STOP_PATIENCE": EPOCHS,
    "BATCH_SIZE": 32,
    "PRINT_MODEL_SUMMARY": False,
}
SAVED = (
    "find /tmp -path '*/models/pilot_*.savedmodel/saved_model.pb' -o -path '*/models/pilot_*.keras'"
)
FIRST_MODEL = (
    "c=$(docker ps -q --filter label=trackday.workload=donkeycar-train);"
    f' [ -n "$c" ] && docker exec "$c" sh -c "{SAVED}" | grep -q . && echo yes'
)
NOTICE = '{"action": "stop", "time": "2026-11-30T23:59:30Z"}'


@pytest.fixture(scope="module")
def spot_manager(
    node_image: str, ssh_key: SshKey
) -> Iterator[tuple[Cluster, Node, dict, standins.Metadata]]:
    """The AWS stack's manager (spot), bootstrapped, beside the metadata stand-in."""
    stack = render("aws", ssh_key, nodes={"count": 1})
    cluster = harness.new_cluster(node_image, SUBNET, ssh_key)
    metadata = standins.start_metadata(node_image)
    try:
        # The manager forms its swarm through Parameter Store (aws_api.py) with the role the
        # metadata stand-in gives it, as in test_spot.py.
        keys = (*standins.S3_KEYS, "session-token")
        role = {"Code": "Success", "AccessKeyId": keys[0], "SecretAccessKey": keys[1],
                "Token": keys[2]}  # fmt: skip
        metadata.write("aws-role.json", json.dumps(role))
        api = aws_api.start(
            cluster, AWS_API, [aws_api.node_role("spot", "manager", None, keys)], False
        )
        node = cluster.boot(
            "manager", stack.node("manager").user_data, MANAGER, files=api.node_files
        )
        metadata.connect(node)
        swarm = aws_api.wait_for_swarm(api, cluster)
        outputs = stack.outputs | {
            "managerAddress": node.address,
            "managerHostKey": swarm.manager_host_key,
        }
        yield cluster, node, outputs, metadata
    finally:
        if not harness.keep_nodes():
            cluster.down()
            metadata.down()


def test_an_interrupted_job_runs_again_from_its_checkpoint_when_the_node_comes_back(
    spot_manager, trainer_image: str, tmp_path: Path
) -> None:
    cluster, manager, outputs, metadata = spot_manager
    manager.load_image(trainer_image)
    (tmp_path / "s3").mkdir()
    s3 = serve_s3_on(cluster, S3, tmp_path / "s3")
    bucket = s3.create_bucket()
    outputs = outputs | {
        "target": "azure",  # the bucket reached as through Azure's S3 gateway (no AWS S3 here)
        "storageAccount": "trackdaytest",
        "bucketUrl": f"s3://{bucket}",
        "nodeBucketUrl": f"s3://{bucket}",
        "s3Endpoint": s3.endpoint,
        "s3AccessKeyId": s3.key,
        "s3SecretAccessKey": s3.secret,
        "image": trainer_image,
        "training": {**outputs["training"], "gpus": 0, "overrides": SMALL},
    }
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    tub = write_sample_tub(tmp_path / "data", records=300, seed=7)
    create_archive([tub], tmp_path / "data.tar.zst")
    argv = [sys.executable, "-m", "trackday", "donkey", "submit", str(tmp_path / "data.tar.zst")]
    argv += ["--stack", "aws", "--outputs", str(tmp_path / "outputs.json")]
    log = (tmp_path / "submit.log").open("w")
    submit = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=os.environ | s3.env())
    try:
        # donkeycar's ModelCheckpoint saved the first epoch's model in the job's models folder.
        wait_for(
            "the job's first checkpoint",
            lambda: manager.root(FIRST_MODEL, check=False).strip() == "yes",
            600,
            lambda: (tmp_path / "submit.log").read_text() + manager.log(),
        )
        metadata.write("aws-action.json", NOTICE)
        assert submit.wait(timeout=600) == INTERRUPTED_EXIT, (tmp_path / "submit.log").read_text()
    finally:
        if submit.poll() is None:
            submit.kill()
        log.close()
    output = (tmp_path / "submit.log").read_text()
    assert "the job runs again by itself" in output, output
    run_id = re.search(r"run (\S+): Swarm job", output).group(1)
    client = s3.client()

    def has(name: str, run: str = f"{run_id}/") -> bool:
        listed = client.list_objects_v2(Bucket=bucket, Prefix=f"runs/donkeycar/{run}{name}")
        return bool(listed.get("Contents"))

    def read(key: str) -> str:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read().decode()

    def job_service() -> dict:
        [service] = json.loads(manager.root("docker service inspect $(docker service ls -q)"))
        return service

    # The submitter exits once the handler has marked the job; the handler scales it to zero
    # only after `docker stop` returned, i.e. once the trainer has written its records.
    wait_for(
        "the job stopped and kept at zero replicas",
        lambda: job_service()["Spec"]["Mode"]["Replicated"]["Replicas"] == 0,
        300,
        manager.log,
    )
    assert has(INTERRUPTED) and has(CHECKPOINT_RECORD) and has(f"{CHECKPOINT_FOLDER}/")
    assert not has(COMPLETE) and not has("FAILED.txt")
    assert not has(LATEST, run="")
    kept = json.loads(read(f"runs/donkeycar/{run_id}/{CHECKPOINT_RECORD}"))["model"]
    assert job_service()["Spec"]["Labels"][RESUME_LABEL] == "1"

    # The capacity comes back: the same instance starts again, its disks kept, no notice.
    metadata.write("aws-action.json", "")
    harness.docker("restart", "--time", "60", manager.container, timeout=180)
    wait_for("the job run again to COMPLETE", lambda: has(COMPLETE), 900, manager.log)
    manifest = json.loads(read(f"runs/donkeycar/{run_id}/{RUN_MANIFEST}"))
    assert manifest["resumed_from"] == kept and manifest["transfer"]["source"] == kept
    assert len(json.loads(read(f"runs/donkeycar/{run_id}/history.json"))["loss"]) == EPOCHS
    assert json.loads(read(f"runs/donkeycar/{LATEST}"))["run_id"] == run_id
