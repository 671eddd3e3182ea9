"""Interrupted runs in the bucket: the node handler's record, the resume link, the chain of
prefixes, and what `dr status` shows and `dr resume` starts from (issue 17).

Records are written with boto3 as the node's handler writes them (infra/bootstrap/spot.py,
`jq -c`: these keys), to a real S3 server; trackday reads them through training.storage.
"""

from __future__ import annotations

import json
import uuid

import pytest
from rich.console import Console

from infra.workloads.run_target import RunTarget
from trackday.dr_interrupted import interrupted_table
from trackday.dr_resume import resumed_settings
from training import storage
from training.deepracer import interruption
from training.deepracer.params import Bucket
from training.deepracer.settings import DeepRacerSettings


def handler_record(run_id: int, prefix: str, checkpoint: str | None) -> bytes:
    iteration = int(checkpoint.split("_")[0]) if checkpoint else None
    return json.dumps(
        {"run_id": run_id, "model_prefix": prefix, "node": "manager",
         "notice": '2026-11-30T20:30:00Z {"action": "stop"}', "checkpoint": checkpoint,
         "iteration": iteration},
        separators=(",", ":"),
    ).encode()  # fmt: skip


@pytest.fixture
def bucket(s3_server):
    name = f"spot-{uuid.uuid4().hex[:8]}"
    client = s3_server.client()
    client.create_bucket(Bucket=name)
    put = lambda key, body: client.put_object(Bucket=name, Key=key, Body=body)  # noqa: E731
    with storage.environment(s3_server.env()):
        yield f"s3://{name}", put


def test_interrupted_runs_are_found_and_linked_to_their_resumed_prefix(bucket) -> None:
    url, put = bucket
    put("run-a/interruption.json", handler_record(1, "run-a", "7_Step-2800.ckpt"))
    put("run-b/interruption.json", handler_record(2, "run-b", None))
    put("run-c/model/deepracer_checkpoints.json", b"{}")  # a run never interrupted
    found = interruption.find_interrupted(url)
    assert [(r.model_prefix, r.checkpoint, r.iteration) for r in found] == [
        ("run-a", "7_Step-2800.ckpt", 7),
        ("run-b", None, None),
    ]
    interruption.link(url, found[0], "run-a-1")
    assert interruption.read_interruption(url, "run-a").resumed_to == "run-a-1"
    assert interruption.resumed_from(url, "run-a-1") == "run-a"
    # Resumed, then interrupted again: one run, three prefixes.
    put("run-a-1/interruption.json", handler_record(1, "run-a-1", "12_Step-4800.ckpt"))
    interruption.link(url, interruption.resumable(url, "run-a-1"), "run-a-2")
    assert interruption.chain(url, "run-a-2") == ["run-a", "run-a-1", "run-a-2"]
    assert [r.model_prefix for r in interruption.find_interrupted(url)] == ["run-b"]


def test_a_run_that_cannot_be_resumed_says_why(bucket) -> None:
    url, put = bucket
    with pytest.raises(interruption.InterruptionError, match="was not interrupted"):
        interruption.resumable(url, "never")
    put("early/interruption.json", handler_record(1, "early", None))
    with pytest.raises(interruption.InterruptionError, match="before its first checkpoint"):
        interruption.resumable(url, "early")
    put("done/interruption.json", handler_record(1, "done", "1_Step-10.ckpt"))
    interruption.link(url, interruption.resumable(url, "done"), "done-1")
    with pytest.raises(interruption.InterruptionError, match="already resumed as done-1"):
        interruption.resumable(url, "done")
    put("broken/interruption.json", b"{not json")
    with pytest.raises(interruption.InterruptionError, match="not an interruption record"):
        interruption.read_interruption(url, "broken")


def test_a_resume_continues_from_the_last_checkpoint_under_the_next_prefix() -> None:
    """DRfC's dr-increment-training: a new prefix, pretrained from the interrupted one."""
    stack = DeepRacerSettings(run_id=0, model_prefix="something-else", workers=3)
    record = interruption.Interruption(4, "spot-run", "7_Step-2800.ckpt", 7)
    new = resumed_settings(stack, record)
    assert (new.run_id, new.model_prefix, new.workers) == (4, "spot-run-1", 3)
    assert new.pretrained.enabled and new.pretrained.model_prefix == "spot-run"
    assert new.pretrained.checkpoint == "last"
    again = resumed_settings(stack, interruption.Interruption(4, "spot-run-1", "9_Step-1.ckpt", 9))
    assert again.model_prefix == "spot-run-2" and again.pretrained.model_prefix == "spot-run-1"


def test_status_shows_each_interrupted_run_with_its_chain_and_how_to_resume(
    bucket, s3_server
) -> None:
    url, put = bucket
    put("lap/interruption.json", handler_record(3, "lap", "2_Step-90.ckpt"))
    interruption.link(url, interruption.resumable(url, "lap"), "lap-1")
    put("lap-1/interruption.json", handler_record(3, "lap-1", "5_Step-300.ckpt"))
    target = RunTarget(None, Bucket(url[5:]), url, s3_server.env(), None, True)
    console = Console(width=200, record=True)
    console.print(interrupted_table(target, "aws"))
    text = console.export_text()
    assert "lap -> lap-1" in text and "5_Step-300.ckpt" in text
    assert "trackday dr resume --stack aws --prefix lap-1" in text
    put_nothing = RunTarget(None, Bucket("x"), f"{url}/empty", s3_server.env(), None, True)
    assert interrupted_table(put_nothing, "aws") is None


def test_metrics_of_a_resumed_run_are_one_curve_over_its_prefixes(tmp_path) -> None:
    """`trackday dr metrics` of the last prefix draws every prefix of the run, in order."""
    from typer.testing import CliRunner

    from tests.training.deepracer.dr_data import write_run
    from trackday.cli import app
    from training.deepracer.metrics import load_run

    for prefix in ("lap", "lap-1"):
        write_run(tmp_path, prefix)
    record = interruption.Interruption(3, "lap", "4_Step-100.ckpt", 4)
    interruption.link(str(tmp_path), record, "lap-1")
    alone = load_run(str(tmp_path / "lap")).iterations
    prefixes, joined = interruption.load_chain(str(tmp_path / "lap-1"))
    assert prefixes == ["lap", "lap-1"]
    numbers = [it.number for it in joined.iterations]
    assert len(numbers) == 2 * len(alone) and numbers == list(
        range(numbers[0], numbers[0] + len(numbers))
    )
    steps = [t.iteration for t in joined.simtrace]
    assert steps == sorted(set(steps))  # the second prefix's traces follow the first's
    result = CliRunner().invoke(
        app, ["dr", "metrics", str(tmp_path / "lap-1"), "--png", str(tmp_path / "m.png")]
    )
    assert result.exit_code == 0, result.output
    assert "one run over 2 prefixes: lap -> lap-1" in result.output
    assert f"{len(numbers)} iterations" in result.output and (tmp_path / "m.png").exists()


def test_a_resume_the_node_prepared_waits_for_its_boot_then_counts_as_resumed(
    bucket, s3_server
) -> None:
    url, put = bucket
    record = json.loads(handler_record(5, "boot", "3_Step-90.ckpt")) | {"prepared": "boot-1"}
    put("boot/interruption.json", json.dumps(record).encode())
    target = RunTarget(None, Bucket(url[5:]), url, s3_server.env(), None, True)
    console = Console(width=200, record=True)
    console.print(interrupted_table(target, "aws"))
    assert "its node's next boot, as boot-1" in console.export_text()
    assert (
        resumed_settings(DeepRacerSettings(), interruption.resumable(url, "boot")).model_prefix
        == "boot-1"
    )
    put("boot-1/model/model_metadata.json", b"{}")  # the resumed trainer's first file
    assert interruption.find_interrupted(url) == []
    with pytest.raises(interruption.InterruptionError, match="resumed by its node"):
        interruption.resumable(url, "boot")
