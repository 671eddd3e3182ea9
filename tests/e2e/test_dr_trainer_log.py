"""`trackday dr stop-training` keeps the trainer's log: the SageMaker container's `docker logs`
(the real console log's lines, printed by a container labelled as SageMaker local mode labels
its `algo-*` service) lands in the bucket, where the dashboard reads entropy per iteration."""

from __future__ import annotations

import io
import json
import tarfile

from tests.dashboard.dashboard_data import console_trainer_log
from trackday import dr_trainer_log
from training import storage
from training.deepracer.policy_log import policy_rounds

PREFIX = "trainer-log-e2e"
RUN_ID = 7


def _files(files: dict[str, bytes]) -> bytes:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for folder in ("opt", "opt/ml", "opt/ml/input", "opt/ml/input/config"):
            item = tarfile.TarInfo(folder)
            item.type = tarfile.DIRTYPE
            tar.addfile(item)
        for name, data in files.items():
            item = tarfile.TarInfo(name)
            item.size = len(data)
            tar.addfile(item, io.BytesIO(data))
    return archive.getvalue()


def _sagemaker_container(client, image: str, log: bytes):
    """An exited `algo-1-*` container whose hyperparameters name PREFIX and whose output is
    `log`, as rl_coach's SageMaker local mode leaves one."""
    hyper = json.dumps({"s3_prefix": json.dumps(PREFIX)}).encode()
    container = client.containers.create(
        image,
        ["cat", "/trainer.log"],
        name=f"tmp-trackday-e2e-{RUN_ID}-algo-1-x",
        labels={"com.docker.compose.service": "algo-1-x", "com.docker.compose.project": "tmp"},
    )
    files = {"trainer.log": log, "opt/ml/input/config/hyperparameters.json": hyper}
    container.put_archive("/", _files(files))
    container.start()
    container.wait(timeout=120)
    return container


def test_the_trainers_log_reaches_the_bucket(swarm, busybox_image, s3_server):
    log = console_trainer_log().read_bytes()
    bucket = f"s3://{s3_server.create_bucket()}"
    with storage.environment(s3_server.env()):
        assert dr_trainer_log.save(swarm, PREFIX, RUN_ID, bucket) is None  # no container yet
        container = _sagemaker_container(swarm, busybox_image, log)
        try:
            url = dr_trainer_log.save(swarm, PREFIX, RUN_ID, bucket)
        finally:
            container.remove(force=True)
        assert url == f"{bucket}/{PREFIX}/logs/training/trackday-run-{RUN_ID}-sagemaker.log"
        saved = storage.read_text(url)
    assert saved.splitlines() == log.decode().splitlines()
    assert len(policy_rounds(saved.splitlines())) == 28
