"""`trackday donkey submit` trains on a booted Azure manager node, and `fetch` gets the model.

The node boots the Azure stack's rendered user data (one node: the manager, where Swarm jobs
run) against Azure's stand-ins (azure_cloud.py): it forms its swarm and publishes "done" with
its host key in the stack's Key Vault, where `pulumi up` reads it. The outputs are the
program's for this node (the manager's address, the host key from the vault), with
the bucket behind the S3 endpoint on the node's network (bucket.py) in the place of the
stack's gateway, whose keys the job gets as on Azure; this machine reaches the same bucket over
S3 (as tests/e2e/test_donkey_submit_swarm.py does: no Azure Blob here). The trainer image is
the e2e tests' (training/donkeycar/Dockerfile, CPU-only), `docker load`ed into the node:
about 50 s for its 2.7 GB here. The training is the e2e tests' smallest (300 records, two
epochs).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra.bootstrap.spec import AZURE_READY_SECRET
from tests.nodes import harness
from tests.nodes.azure_cloud import AzureCloud
from tests.nodes.bucket import serve_s3_on
from tests.nodes.harness import Cluster
from tests.nodes.render import SshKey, render
from trackday.cli import app
from training.donkeycar.archive import create_archive
from training.donkeycar.sample_tub import write_sample_tub

pytestmark = [pytest.mark.docker, pytest.mark.nodes, pytest.mark.timeout(900)]

SMALL = {"MAX_EPOCHS": 2, "BATCH_SIZE": 32, "PRINT_MODEL_SUMMARY": False}
SUBNET, MANAGER, S3 = "10.42.7.0/24", "10.42.7.10", "10.42.7.240"


@pytest.fixture(scope="module")
def azure_manager(node_image: str, ssh_key: SshKey) -> Iterator[tuple[Cluster, dict]]:
    """One Azure node, bootstrapped, and the program's outputs for it (no bucket yet)."""
    stack = render("azure", ssh_key, nodes={"count": 1}, deepracer={"opengl": False})
    cluster = harness.new_cluster(node_image, SUBNET, ssh_key)
    cloud = None
    try:
        cloud = AzureCloud.start(cluster, stack)
        node = cloud.boot("manager", stack.node("manager").user_data, MANAGER)
        node.wait_bootstrapped()
        ready = json.loads(cloud.vault()["secrets"][AZURE_READY_SECRET])
        yield (
            cluster,
            stack.outputs | {"managerAddress": node.address, "managerHostKey": ready["hostKey"]},
        )
    finally:
        if not harness.keep_nodes():
            cluster.down()
            if cloud is not None:
                cloud.down()


def test_submit_trains_on_the_manager_node_and_fetch_gets_the_model(
    azure_manager: tuple[Cluster, dict], trainer_image: str, tmp_path: Path
) -> None:
    cluster, outputs = azure_manager
    cluster.nodes["manager"].load_image(trainer_image)
    (tmp_path / "s3").mkdir()
    s3 = serve_s3_on(cluster, S3, tmp_path / "s3")
    bucket = s3.create_bucket()
    outputs = outputs | {
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
    archive = tmp_path / "data.tar.zst"
    create_archive([tub], archive)
    common = ["--stack", "azure", "--outputs", str(tmp_path / "outputs.json")]
    runner = CliRunner()
    submitted = runner.invoke(app, ["donkey", "submit", str(archive), *common], env=s3.env())
    assert submitted.exit_code == 0, submitted.output
    assert "done: trackday donkey fetch" in submitted.stderr
    manager = cluster.nodes["manager"]
    assert manager.root("docker service ls -q").strip() == ""  # the job is gone
    fetch = ["donkey", "fetch", "latest", *common, "--to", str(tmp_path / "model")]
    fetched = runner.invoke(app, fetch, env=s3.env())
    assert fetched.exit_code == 0, fetched.output
    manifest = json.loads((tmp_path / "model" / "run-manifest.json").read_text())
    assert (tmp_path / "model" / manifest["tflite"]).stat().st_size > 0
