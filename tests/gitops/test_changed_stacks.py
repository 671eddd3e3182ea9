"""Which stacks a change touches: the matrix the pull-request, deploy and drift workflows run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from trackday.changed_stacks import changed_paths, matrix, referenced_paths, touched_stacks


def _stack(root: Path, name: str, target: str, extra: str = "") -> None:
    (root / f"Pulumi.{name}.yaml").write_text(f"config:\n  trackday:target: {target}\n{extra}")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    _stack(tmp_path, "dev", "local")
    _stack(tmp_path, "gcp", "gcp")
    _stack(
        tmp_path,
        "aws",
        "aws",
        "  trackday:deepracer:\n    customFiles: racing/custom_files\n"
        "    bucketUrl: s3://racing/custom_files\n",
    )
    (tmp_path / "racing" / "custom_files").mkdir(parents=True)
    (tmp_path / "racing" / "custom_files" / "reward_function.py").write_text("")
    return tmp_path


def test_a_stack_file_touches_only_its_stack(project):
    assert touched_stacks(project, ["Pulumi.gcp.yaml"]) == ["gcp"]
    assert touched_stacks(project, ["Pulumi.dev.yaml", "README.md", "docs/x.md"]) == []


def test_shared_sources_touch_every_cloud_stack_and_never_local_ones(project):
    for path in (
        "infra/targets/gcp.py",
        "training/donkeycar/Dockerfile",
        "Pulumi.yaml",
        "policy/rules.py",
        "requirements.txt",
    ):
        assert touched_stacks(project, [path]) == ["aws", "gcp"], path
    assert touched_stacks(project, ["infrastructure.md", "trainingday/x"]) == []


def test_a_reward_function_touches_the_stack_that_names_its_folder(project):
    assert referenced_paths(project, "aws") == ["racing/custom_files/"]
    assert touched_stacks(project, ["racing/custom_files/reward_function.py"]) == ["aws"]
    assert touched_stacks(project, ["racing/other.py"]) == []


def test_matrix_names_each_stack_with_its_target(project):
    assert matrix(project, ["aws", "gcp"]) == {
        "include": [{"stack": "aws", "target": "aws"}, {"stack": "gcp", "target": "gcp"}]
    }


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_command_line_between_two_refs(project):
    _git(project, "init", "-q", "-b", "main")
    _git(project, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "add", "-A")
    _git(project, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "a")
    _git(project, "checkout", "-qb", "change")
    _stack(project, "gcp", "gcp", "  trackday:tags:\n    owner: pit-crew\n")
    _git(project, "-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qam", "b")
    assert changed_paths(project, "main") == ["Pulumi.gcp.yaml"]
    run = [sys.executable, "-m", "trackday.changed_stacks"]
    env_root = str(Path(__file__).resolve().parents[2])
    done = subprocess.run(
        [*run, "main", "change"],
        cwd=project,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_root, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"include": [{"stack": "gcp", "target": "gcp"}]}
    every = subprocess.run(
        [*run, "--all"],
        cwd=project,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_root, "PATH": "/usr/bin:/bin"},
    )
    assert [x["stack"] for x in json.loads(every.stdout)["include"]] == ["aws", "gcp"]
    bad = subprocess.run(
        [*run, "no-such-ref"],
        cwd=project,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_root, "PATH": "/usr/bin:/bin"},
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: cannot compare no-such-ref...HEAD: fatal: ambiguous")
    assert len(bad.stderr.strip().splitlines()) == 1
