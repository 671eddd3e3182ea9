"""The GitHub workflows: actionlint (with shellcheck on every run: step) and the project's own rules
(actions pinned by version, cloud access by OIDC only, secrets only from the secret store)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.stacks import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))
ACTIONLINT = Path(sys.executable).parent / "actionlint"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@(v\d+\.\d+\.\d+|[0-9a-f]{40})$")
# Inputs that would hand a workflow a long-lived cloud key instead of an OIDC identity.
KEY_INPUTS = {"aws-access-key-id", "aws-secret-access-key", "credentials_json", "creds"}


def _actionlint(repo: Path) -> subprocess.CompletedProcess:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: run `scripts/setup test`"
    return subprocess.run(
        [str(ACTIONLINT), "-shellcheck", shellcheck, "-no-color"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for job in workflow["jobs"].values() for s in job.get("steps", [])]


def test_the_workflows_pass_actionlint_and_shellcheck():
    assert {p.name for p in FILES} >= {
        "pull-request.yml",
        "deploy.yml",
        "drift.yml",
        "stack.yml",
        "changes.yml",
    }
    done = _actionlint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_here_does_catch_a_shell_mistake(tmp_path):
    """The check above can fail: the same files with one unquoted variable do not pass."""
    shutil.copytree(ROOT / ".github", tmp_path / ".github")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    stack = tmp_path / ".github" / "workflows" / "stack.yml"
    text = stack.read_text()
    assert 'pulumi login "$PULUMI_BACKEND_URL"' in text
    stack.write_text(
        text.replace('pulumi login "$PULUMI_BACKEND_URL"', "pulumi login $PULUMI_BACKEND_URL")
    )
    done = _actionlint(tmp_path)
    assert done.returncode != 0
    assert "SC2086" in done.stdout


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_action_is_pinned_by_version(path):
    for step in _steps(_load(path)):
        uses = step.get("uses")
        if uses and not uses.startswith("./"):
            assert PINNED.match(uses), f"{path.name}: {uses} is not pinned to vX.Y.Z or a commit"
    for job in _load(path)["jobs"].values():
        uses = job.get("uses")
        assert uses is None or uses.startswith("./.github/workflows/"), uses


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_cloud_access_is_by_oidc_and_secrets_come_from_the_store(path):
    text = path.read_text()
    for step in _steps(_load(path)):
        assert not KEY_INPUTS & set(step.get("with") or {}), f"{path.name}: {step}"
    # Secret values appear only as `secrets.NAME` expressions, never as literals.
    assert not re.search(r"(AKIA[0-9A-Z]{16}|pul-[0-9a-f]{40}|-----BEGIN)", text)
    for name in re.findall(r"secrets\.([A-Z_]+)", text):
        assert name in {"PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE"}, name


def test_pull_requests_test_preview_and_comment_with_the_cost_difference():
    pr = _load(WORKFLOWS / "pull-request.yml")
    assert list(pr["on"]) == ["pull_request"]
    assert any(s.get("run") == "scripts/test" for s in pr["jobs"]["test"]["steps"])
    assert pr["jobs"]["preview"]["with"]["command"] == "preview"
    stack = _load(WORKFLOWS / "stack.yml")
    steps = stack["jobs"]["pulumi"]["steps"]
    preview = next(s for s in steps if s.get("id") == "preview")
    assert preview["uses"].startswith("pulumi/actions@")
    assert preview["with"]["policyPacks"] == "policy"
    assert preview["with"]["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}"
    runs = "\n".join(s.get("run", "") for s in steps)
    assert 'bin/trackday plan --stack "$SHORT_STACK" --against "origin/$BASE_REF"' in runs
    assert "--expect-no-changes" in runs and "--preview-only" in runs


def test_merges_deploy_and_drift_runs_on_a_schedule():
    deploy = _load(WORKFLOWS / "deploy.yml")
    assert deploy["on"] == {"push": {"branches": ["main"]}}
    assert deploy["jobs"]["up"]["with"]["command"] == "up"
    # Changes since the last successful deploy, so a failed or superseded run is caught up.
    assert "--status success" in deploy["jobs"]["since"]["steps"][0]["run"]
    assert deploy["jobs"]["stacks"]["with"]["base"] == "${{ needs.since.outputs.sha }}"
    assert deploy["concurrency"] == {"group": "deploy", "cancel-in-progress": False}
    drift = _load(WORKFLOWS / "drift.yml")
    assert drift["on"]["schedule"][0]["cron"]
    assert drift["jobs"]["stacks"]["with"] == {"all": True}
    assert drift["jobs"]["refresh"]["with"]["command"] == "drift"
