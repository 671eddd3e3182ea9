"""The two sides of `trackday plan --stack NAME --against REF`, planned the same way.

Each side is `trackday plan --stack NAME --json` run by this Python in a folder holding that
side's code and stack file. The REF side is exported from git (`git archive`) into a
temporary folder, so the working tree is never touched and a change to infra/ shows up as
well as a change to the stack file; an image's build context is summed up by the digest of
what Docker would send (build_context.py). `compare` plans both at once and diffs them.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from trackday.build_context import context_digest
from trackday.errors import TrackdayError
from trackday.plan_diff import PlanDiff, diff_plans

WORKING_TREE = "working tree"


class DiffError(TrackdayError):
    """A comparison that cannot be made; the message says what is wrong and how to fix it."""


def plan_at(project: Path, stack: str, ref: str | None) -> dict[str, Any] | None:
    """The `--json` plan of `stack` in the working tree (ref None) or at git `ref`.

    None when the stack file does not exist on that side (a stack added or removed).
    """
    if ref is None:
        return _plan_in(project, stack)
    top, relative = _repository(project)
    commit = _git(top, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", what=ref)
    with tempfile.TemporaryDirectory(prefix="trackday-against-") as tmp:
        archive = subprocess.run(
            ["git", "-C", str(top), "archive", "--format=tar", commit],
            capture_output=True,
            check=True,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        return _plan_in(Path(tmp) / relative, stack, label=ref)


def _plan_in(project: Path, stack: str, label: str = WORKING_TREE) -> dict[str, Any] | None:
    """Run `trackday plan --json` with the code and stack file found in `project`."""
    if not (project / f"Pulumi.{stack}.yaml").exists():
        return None
    if not (project / "trackday").is_dir():
        raise DiffError(f"{label}: {project} holds no trackday package to plan with")
    env = {**os.environ, "PYTHONPATH": str(project)}
    done = subprocess.run(
        [sys.executable, "-m", "trackday", "plan", "--stack", stack, "--json"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        lines = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()
        raise DiffError(f"{label}: `trackday plan --stack {stack}` failed: {lines[-1]}")
    plan = json.loads(done.stdout)
    for resource in plan.get("resources", []):
        context = _build_context(resource)
        if context is not None and Path(context).is_dir():
            resource["inputs"][CONTEXT_DIGEST] = context_digest(Path(context))
    return _relative(plan, str(project.resolve()))


# An image's inputs name its build context folder, not what is in it: this pseudo-input
# carries a digest of the files Docker would send, so a change to training/ shows up.
CONTEXT_DIGEST = "(build context sha256)"


def _build_context(resource: dict[str, Any]) -> str | None:
    inputs = resource.get("inputs", {})
    if resource["type"] == "docker-build:index:Image":
        return (inputs.get("context") or {}).get("location")
    if resource["type"] == "docker:index/image:Image":
        return (inputs.get("build") or {}).get("context")
    return None


def _relative(value: Any, root: str) -> Any:
    """Paths inside the project written relative to it, so both sides' folders compare equal."""
    if isinstance(value, str):
        return "." + value[len(root) :] if value == root or value.startswith(root + "/") else value
    if isinstance(value, dict):
        return {k: _relative(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative(v, root) for v in value]
    return value


def _repository(project: Path) -> tuple[Path, Path]:
    """The git top-level folder holding `project`, and `project` relative to it."""
    top = Path(_git(project, "rev-parse", "--show-toplevel", what=None))
    return top, project.resolve().relative_to(top.resolve())


def _git(where: Path, *args: str, what: str | None) -> str:
    done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True)
    if done.returncode != 0:
        if what is None:
            raise DiffError(f"{where} is not inside a git repository; --against needs one")
        raise DiffError(
            f"--against {what}: no such commit, branch or tag here "
            "(fetch it first, e.g. `git fetch origin main`, then use origin/main)"
        )
    return done.stdout.strip()


def compare(project: Path, stack: str, ref: str) -> PlanDiff:
    """The stack at `ref` against the working tree of `project` (both planned at once)."""
    top, _ = _repository(project)  # a missing repository or ref is the first thing to say
    _git(top, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", what=ref)
    with ThreadPoolExecutor(max_workers=2) as pool:
        at_ref = pool.submit(plan_at, project, stack, ref)
        after = plan_at(project, stack, None)
        before = at_ref.result()
    if before is None and after is None:
        raise DiffError(
            f"Pulumi.{stack}.yaml exists neither at {ref} nor in the working tree; "
            "name a stack that ships here"
        )
    return diff_plans(stack, ref, before, after)
