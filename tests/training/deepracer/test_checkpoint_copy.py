"""An interrupted run copied from another stack's bucket into this one's, for
`trackday dr resume --from-stack` (training/deepracer/checkpoint_copy.py), on a real S3 server.

The other bucket is written with boto3 as the simulator's trainer and the node's handler
leave it; the copy must take exactly what deepracer-simapp's pretrained loading reads, and
nothing a hostile bucket adds.
"""

from __future__ import annotations

import json
import uuid

import pytest

from trackday.dr_resume import resumed_settings
from training import storage
from training.deepracer import interruption
from training.deepracer.checkpoint_copy import COPIED_FROM, CopyError, copy_interrupted
from training.deepracer.settings import DeepRacerSettings

CHECKPOINTS = {
    "best_checkpoint": {"name": "2_Step-800.ckpt", "time_stamp": 1.0, "avg_eval_metric": 0.5},
    "last_checkpoint": {"name": "3_Step-1200.ckpt", "time_stamp": 2.0, "avg_eval_metric": 0.4},
}
TF_FILES = ("index", "meta", "data-00000-of-00001")
NEEDED = sorted(
    ["deepracer_checkpoints.json", ".coach_checkpoint"]
    + [f"{n}.{ext}" for n in ("2_Step-800.ckpt", "3_Step-1200.ckpt") for ext in TF_FILES]
)


@pytest.fixture
def buckets(s3_server):
    client = s3_server.client()
    names = [f"copy-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for name in names:
        client.create_bucket(Bucket=name)
    source, target = ((f"s3://{name}", s3_server.env()) for name in names)
    return client, names, source, target


def interrupted_run(client, bucket: str, prefix: str = "run-a", checkpoints=CHECKPOINTS) -> None:
    put = lambda key, body: client.put_object(Bucket=bucket, Key=key, Body=body)  # noqa: E731
    record = {"run_id": 4, "model_prefix": prefix, "node": "manager", "notice": "n",
              "checkpoint": "3_Step-1200.ckpt", "iteration": 3,
              "prepared": f"{prefix}-1"}  # fmt: skip
    put(f"{prefix}/interruption.json", json.dumps(record))
    put(f"{prefix}/model/deepracer_checkpoints.json", json.dumps(checkpoints))
    put(f"{prefix}/model/.coach_checkpoint", 'model_checkpoint_path: "3_Step-1200.ckpt"\n')
    for name in ("1_Step-400.ckpt", "2_Step-800.ckpt", "3_Step-1200.ckpt"):
        for ext in TF_FILES:
            put(f"{prefix}/model/{name}.{ext}", f"{name}.{ext}".encode() * 100)
    put(f"{prefix}/model/nested/3_Step-1200.ckpt.index", b"not the trainer's")
    put(f"{prefix}/model/model_metadata.json", b"{}")


def keys(client, bucket: str, prefix: str = "") -> list[str]:
    listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in listed)


def test_the_checkpoint_the_trainer_loads_is_copied_with_a_record_linking_both(buckets) -> None:
    client, (old, new), source, target = buckets
    interrupted_run(client, old)
    record = copy_interrupted(source, target, "run-a")
    assert keys(client, new) == sorted(
        [f"run-a/model/{k}" for k in NEEDED] + ["run-a/interruption.json", f"run-a/{COPIED_FROM}"]
    )
    body = client.get_object(Bucket=new, Key="run-a/model/3_Step-1200.ckpt.meta")["Body"].read()
    assert body == b"3_Step-1200.ckpt.meta" * 100
    origin = json.loads(client.get_object(Bucket=new, Key=f"run-a/{COPIED_FROM}")["Body"].read())
    assert origin["bucket"] == f"s3://{old}" and origin["record"]["prepared"] == "run-a-1"
    # The prefix prepared in the other bucket means nothing here: the resume goes on here.
    assert record.prepared is None and record.checkpoint == "3_Step-1200.ckpt"
    with storage.environment(target[1]):
        here = interruption.resumable(target[0], "run-a")
    settings = resumed_settings(DeepRacerSettings(model_prefix="x"), here)
    assert settings.model_prefix == "run-a-1" and settings.pretrained.model_prefix == "run-a"
    assert keys(client, old, "run-a-1") == []  # nothing written to the other bucket


@pytest.mark.parametrize("name", ["../../elsewhere", "3_Step-1200.ckpt/../../x", ""])
def test_a_checkpoint_name_that_is_not_the_trainers_is_refused(buckets, name: str) -> None:
    client, (old, new), source, target = buckets
    hostile = {**CHECKPOINTS, "last_checkpoint": {"name": name}}
    interrupted_run(client, old, checkpoints=hostile)
    with pytest.raises(CopyError, match="not checkpoint names of the trainer"):
        copy_interrupted(source, target, "run-a")
    assert keys(client, new) == []


def test_sizes_are_bounded_and_an_existing_prefix_is_never_overwritten(buckets) -> None:
    client, (old, new), source, target = buckets
    interrupted_run(client, old)
    with pytest.raises(CopyError, match="over the 1000 a DeepRacer checkpoint could need"):
        copy_interrupted(source, target, "run-a", max_total=1000)
    assert keys(client, new) == []
    client.put_object(Bucket=new, Key="run-a/reward_function.py", Body=b"mine")
    with pytest.raises(CopyError, match="exists already"):
        copy_interrupted(source, target, "run-a")
    with pytest.raises(CopyError, match="letters, digits"):
        copy_interrupted(source, target, "../run-a")


def test_a_run_that_cannot_be_resumed_is_not_copied(buckets) -> None:
    client, (_, new), source, target = buckets
    with pytest.raises(interruption.InterruptionError, match="was not interrupted"):
        copy_interrupted(source, target, "run-a")
    assert keys(client, new) == []
