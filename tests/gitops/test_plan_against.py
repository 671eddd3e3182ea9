"""`trackday plan --against REF` on a throw-away git repository holding a copy of the project.

The copy is the project's HEAD; a second commit changes the gcp stack file, and the working
tree then changes it again, so the comparison is tested against a ref and against the
working tree without ever touching this checkout's history.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.infra.stacks import ROOT
from trackday.build_context import context_digest
from trackday.cli import app
from trackday.plan_diff import diff_plans
from trackday.plan_markdown import render_markdown
from trackday.plan_sides import CONTEXT_DIGEST

BUCKET = "gcp:storage/bucket:Bucket"
REPOSITORY = "gcp:artifactregistry/repository:Repository"
KEY = "gcp:serviceaccount/key:Key"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def _edit_stack(repo: Path, stack: str, **sections: dict) -> None:
    """Merge `sections` into the `trackday:` keys of Pulumi.<stack>.yaml."""
    path = repo / f"Pulumi.{stack}.yaml"
    data = yaml.safe_load(path.read_text())
    for key, value in sections.items():
        data["config"][f"trackday:{key}"] = {**data["config"].get(f"trackday:{key}", {}), **value}
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository: commit 1 is this project's HEAD, commit 2 changes the gcp stack."""
    repo = tmp_path_factory.mktemp("project")
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(repo, filter="data")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "test@example.invalid")
    _git(repo, "config", "user.name", "test")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "project at HEAD")
    _edit_stack(
        repo,
        "gcp",
        budget={"runHours": 2},
        gcp={"serviceAccountKey": True},
        tags={"owner": "pit-crew"},
    )
    _git(repo, "commit", "-q", "-am", "gcp: two-hour runs, a key, new owner")
    return repo


def _plan_against(repo: Path, *args: str):
    return CliRunner().invoke(app, ["plan", "--dir", str(repo), *args])


def test_a_commit_that_changes_a_stack_file(repo):
    result = _plan_against(repo, "--stack", "gcp", "--against", "HEAD~1", "--json")
    assert result.exit_code == 0, result.output
    diff = json.loads(result.stdout)
    assert diff["against"] == "HEAD~1"
    assert [(r["type"], r["name"]) for r in diff["added"]] == [(KEY, "trackday-gcp-identity-key")]
    assert diff["removed"] == []
    changed = {r["type"]: r["changes"] for r in diff["changed"]}
    assert set(changed) == {BUCKET, REPOSITORY}, "only the labelled resources change"
    assert changed[BUCKET] == [
        {"path": "labels.owner", "before": "racing-team", "after": "pit-crew"}
    ]
    per_run = diff["costs"]["perRun"]
    assert per_run["after"] == pytest.approx(2 * per_run["before"], abs=1e-3)
    assert per_run["change"] == pytest.approx(per_run["after"] - per_run["before"], abs=1e-4)
    assert diff["costs"]["hourly"]["change"] == 0


def test_working_tree_against_head_and_the_comment_text(repo):
    _edit_stack(repo, "gcp", storage={"protect": False})
    try:
        result = _plan_against(repo, "--stack", "gcp", "--against", "HEAD")
    finally:
        _git(repo, "checkout", "--", "Pulumi.gcp.yaml")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "### `trackday plan --stack gcp` against `HEAD`" in text
    assert "0 to add, 1 to change, 0 to remove" in text
    assert f"! {BUCKET} trackday-gcp-storage-bucket" in text
    assert "!     (retainOnDelete): true -> false" in text
    assert "!     forceDestroy: false -> true" in text
    assert "| per run |" in text and "+0.0000 |" in text
    assert _git(repo, "status", "--porcelain") == "", "the working tree is left as it was"


def test_a_change_to_the_trainer_sources_shows_as_an_image_change(repo):
    trainer = repo / "training" / "donkeycar" / "Dockerfile"
    original = trainer.read_text()
    cache = repo / "training" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "ignored.pyc").write_bytes(b"not sent to Docker")
    try:
        result = _plan_against(repo, "--stack", "gcp", "--against", "HEAD", "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["changed"] == [], ".dockerignore'd files change nothing"
        trainer.write_text(original + "# a comment\n")
        result = _plan_against(repo, "--stack", "gcp", "--against", "HEAD", "--json")
    finally:
        trainer.write_text(original)
        (cache / "ignored.pyc").unlink()
    assert result.exit_code == 0, result.output
    [image] = json.loads(result.stdout)["changed"]
    assert image["type"] == "docker-build:index:Image"
    assert [c["path"] for c in image["changes"]] == [CONTEXT_DIGEST]


def test_context_digest_follows_dockerignore(tmp_path):
    (tmp_path / ".dockerignore").write_text("*\n!app/\n**/*.log\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "main.py").write_text("print(1)\n")
    (tmp_path / "notes.txt").write_text("left out\n")
    first = context_digest(tmp_path)
    (tmp_path / "notes.txt").write_text("still left out\n")
    (tmp_path / "app" / "run.log").write_text("left out too\n")
    assert context_digest(tmp_path) == first
    (tmp_path / "app" / "main.py").write_text("print(2)\n")
    assert context_digest(tmp_path) != first


def test_unchanged_stack_shows_nothing_to_do(repo):
    result = _plan_against(repo, "--stack", "dev", "--against", "HEAD~1", "--json")
    assert result.exit_code == 0, result.output
    diff = json.loads(result.stdout)
    assert (diff["added"], diff["changed"], diff["removed"]) == ([], [], [])
    assert diff["costs"]["hourly"] == {"before": 0.0, "after": 0.0, "change": 0.0}


def test_bad_refs_and_stacks_are_one_clear_line(repo, tmp_path):
    unknown = _plan_against(repo, "--stack", "gcp", "--against", "no-such-branch")
    assert unknown.exit_code == 2
    assert unknown.stderr.strip() == (
        "error: --against no-such-branch: no such commit, branch or tag here "
        "(fetch it first, e.g. `git fetch origin main`, then use origin/main)"
    )
    nowhere = _plan_against(repo, "--stack", "nope", "--against", "HEAD")
    assert nowhere.exit_code == 2
    assert "Pulumi.nope.yaml exists neither at HEAD nor in the working tree" in nowhere.stderr
    (tmp_path / "Pulumi.dev.yaml").write_text("config: {}\n")
    outside = CliRunner().invoke(
        app, ["plan", "--dir", str(tmp_path), "--stack", "dev", "--against", "HEAD"]
    )
    assert outside.exit_code == 2
    assert "is not inside a git repository; --against needs one" in outside.stderr


def _plan(*resources: tuple[str, str, dict], hourly: float = 0.0) -> dict:
    return {
        "resources": [
            {"type": t, "name": n, "protect": False, "inputs": i} for t, n, i in resources
        ],
        "costs": {"hourly": hourly, "perRun": 0.0, "unpriced": [], "asOf": "d", "source": "s"},
    }


def test_a_new_stack_is_all_additions_and_a_deleted_one_all_removals():
    node = ("aws:ec2/instance:Instance", "node-0", {"instanceType": "g4dn.2xlarge"})
    added = diff_plans("aws", "main", None, _plan(node, hourly=0.752))
    assert [r["name"] for r in added.added] == ["node-0"]
    assert added.cost_change("hourly") == (0.0, 0.752, 0.752)
    removed = diff_plans("aws", "main", _plan(node, hourly=0.752), None)
    assert [r["name"] for r in removed.removed] == ["node-0"]
    assert "| per hour | 0.7520 | 0.0000 | -0.7520 |" in render_markdown(removed)
    assert "- aws:ec2/instance:Instance node-0 (instanceType=g4dn.2xlarge)\n" in render_markdown(
        removed
    )
