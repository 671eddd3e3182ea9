"""The dashboard's readers on local folders: what they read, and what they refuse."""

from __future__ import annotations

import json
import re

import pytest

from tests.dashboard import dashboard_data
from tests.servers import ROOT as REPO
from tests.training.deepracer import dr_data
from trackday.dashboard import deepracer_runs, donkey_runs
from trackday.dashboard.costs import stack_price
from trackday.dashboard.stacks import MODELS, BucketError, Stack, discover, reading
from training.deepracer import bucket_io
from training.deepracer.simtrace import SimtraceError


@pytest.fixture
def dr_bucket(tmp_path):
    dr_data.write_run(tmp_path, "run-a")
    return str(tmp_path)


def test_reward_chart_reads_no_simtrace(dr_bucket, monkeypatch):
    read: list[str] = []
    original = bucket_io.read_object
    monkeypatch.setattr(bucket_io, "read_object", lambda url: read.append(url) or original(url))
    found = deepracer_runs.metrics(dr_bucket, "run-a")
    assert len(found["iterations"]) == dr_data.ITERATIONS
    assert read and not [url for url in read if "simtrace" in url]


def test_map_reads_one_iteration_of_every_worker(dr_bucket, monkeypatch):
    read: list[str] = []
    original = bucket_io.read_object
    monkeypatch.setattr(bucket_io, "read_object", lambda url: read.append(url) or original(url))
    points = deepracer_runs.simtrace_points(dr_bucket, "run-a", 2, "speed")
    assert points["files"] == dr_data.WORKERS and points["steps"] == dr_data.WORKERS * 5 * 30
    assert set(points["value"]) == {1.0}  # dr_data's throttle
    assert sorted(u.rsplit("/", 3)[-3] for u in read if "simtrace" in u) == ["0", "1"]


def test_a_trace_without_positions_is_refused_by_name(tmp_path):
    dr_data.write_run(tmp_path, "run-b")
    trace = tmp_path / "run-b" / "0" / "training-simtrace" / "1-iteration.csv"
    trace.write_text("episode,steps,reward\n1,1,0.5\n")
    with pytest.raises(SimtraceError, match=r"1-iteration\.csv: not a simulator simtrace"):
        deepracer_runs.simtrace_points(str(tmp_path), "run-b", 1, "reward")


def test_model_prefixes_are_the_folders_with_metrics(dr_bucket, tmp_path):
    (tmp_path / "custom_files").mkdir()
    (tmp_path / "custom_files" / "reward_function.py").write_text("")
    assert deepracer_runs.model_prefixes(dr_bucket) == ["run-a"]


def test_track_lines_need_a_known_track(tmp_path):
    assert deepracer_runs.track_lines(dr_data.TRACKS, "no_such_track") is None
    lines = deepracer_runs.track_lines(dr_data.TRACKS, dashboard_data.WORLD)
    assert set(lines) == {"center", "inner", "outer"} and len(lines["center"]["x"]) > 10


def test_local_models_folder_lists_runs_the_trainer_wrote(tmp_path):
    models = tmp_path / "models"
    dashboard_data.donkey_run(str(models), "20261130-090000-eeeeee", 5, tmp_path / "work")
    (stack,) = discover(tmp_path, ["none"], {}, models)[1:]
    assert stack.name == MODELS
    with reading(stack):
        (run,) = donkey_runs.list_runs(stack.donkey_runs_url)
        assert run.status == "COMPLETE" and run.records == 300
        assert len(donkey_runs.history(stack.donkey_runs_url, run.run_id)["val_loss"]) == 5
        assert donkey_runs.latest(stack.donkey_runs_url) == run.run_id
        assert donkey_runs.read_run(stack.donkey_runs_url, "..") is None


def test_a_folder_nobody_trained_into_has_no_runs(tmp_path):
    assert donkey_runs.list_runs(str(tmp_path / "absent")) == []


def test_a_stack_without_outputs_says_why(tmp_path):
    outputs = tmp_path / "x.json"
    outputs.write_text("[1]")
    (stack,) = discover(tmp_path, [], {"x": outputs}, None)
    assert not stack.deployed and "expected a JSON object" in stack.problem
    with pytest.raises(BucketError, match="stack x: outputs of stack x"), reading(stack):
        pass


def test_a_local_stack_missing_its_keys_names_the_output(tmp_path):
    stack = Stack("dev", "local", "s3://b", {"target": "local", "bucketUrl": "s3://b"})
    with pytest.raises(BucketError, match="output 's3Endpoint' is missing"), reading(stack):
        pass


def test_discovery_reads_the_stack_files(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text("name: trackday\n")
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  trackday:target: local\n")
    outputs = tmp_path / "dev.json"
    outputs.write_text(json.dumps({"target": "local", "bucketUrl": "s3://trackday"}))
    (stack,) = discover(tmp_path, [], {"dev": outputs}, None)
    assert (stack.name, stack.target, stack.bucket_url) == ("dev", "local", "s3://trackday")


@pytest.mark.parametrize("name", ["aws", "azure", "gcp", "dev"])
def test_the_projects_stacks_are_priced_per_hour(name):
    price = stack_price(REPO, name)
    if name == "dev":  # the local target: this machine
        assert (price.per_hour, price.spent(10)) == (0.0, 0.0)
    else:
        assert re.fullmatch(r"\$\d+\.\d\d/h while .* \(list prices of .*\)", price.text)
        assert f"${price.per_hour:.2f}/h" in price.text
        assert price.spent(2.5) == round(price.per_hour * 2.5, 2)


def test_outputs_option_needs_a_stack_name():
    from typer.testing import CliRunner

    from trackday.cli import app

    done = CliRunner().invoke(app, ["dashboard", "--no-browser", "--outputs", "outputs.json"])
    assert done.exit_code == 2 and "write --outputs STACK=FILE" in done.output
