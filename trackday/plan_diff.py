"""`trackday plan --stack NAME --against REF`: what a change to a stack does, and what it costs.

Both sides are planned the same way: `trackday plan --stack NAME --json` run by this Python
in a folder holding that side's code and stack file. The REF side is exported from git
(`git archive`) into a temporary folder, so the working tree is never touched and a change
to infra/ shows up as well as a change to the stack file. The two plans are then compared
by resource (type and name): added, removed, and changed with the inputs that differ.
This is what the pull-request comment shows (.github/workflows/pull-request.yml).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WORKING_TREE = "working tree"


class DiffError(RuntimeError):
    """A comparison that cannot be made; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class Change:
    """One input of a resource that differs: its dotted path and the values on both sides."""

    path: str
    before: Any
    after: Any


@dataclass
class PlanDiff:
    stack: str
    ref: str
    added: list[dict[str, Any]] = field(default_factory=list)
    removed: list[dict[str, Any]] = field(default_factory=list)
    changed: list[tuple[dict[str, Any], list[Change]]] = field(default_factory=list)
    costs_before: dict[str, Any] | None = None
    costs_after: dict[str, Any] | None = None

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def cost_change(self, key: str) -> tuple[float, float, float]:
        """(before, after, after - before) for a key of COST_KEYS; a missing side costs 0."""
        before = float((self.costs_before or {}).get(key, 0.0))
        after = float((self.costs_after or {}).get(key, 0.0))
        return before, after, round(after - before, 4)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack": self.stack,
            "against": self.ref,
            "added": [{**_brief(r), "inputs": r.get("inputs", {})} for r in self.added],
            "removed": [{**_brief(r), "inputs": r.get("inputs", {})} for r in self.removed],
            "changed": [
                {
                    **_brief(r),
                    "changes": [
                        {"path": c.path, "before": c.before, "after": c.after} for c in changes
                    ],
                }
                for r, changes in self.changed
            ],
            "costs": {
                key: dict(zip(("before", "after", "change"), self.cost_change(key), strict=True))
                for key in COST_KEYS
            }
            | {"unpriced": _unpriced(self.costs_before, self.costs_after)},
        }


# The cost totals compared, and how the comment names them.
COST_KEYS = {"hourly": "per hour", "perRun": "per run", "stoppedMonthly": "per month stopped"}


def diff_plans(
    stack: str, ref: str, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> PlanDiff:
    """Compare two `trackday plan --json` documents; None stands for a stack that is not there."""
    old = {_key(r): r for r in (before or {}).get("resources", [])}
    new = {_key(r): r for r in (after or {}).get("resources", [])}
    result = PlanDiff(
        stack=stack,
        ref=ref,
        costs_before=(before or {}).get("costs"),
        costs_after=(after or {}).get("costs"),
    )
    result.added = [new[k] for k in sorted(new.keys() - old.keys())]
    result.removed = [old[k] for k in sorted(old.keys() - new.keys())]
    for key in sorted(old.keys() & new.keys()):
        changes = input_changes(old[key], new[key])
        if changes:
            result.changed.append((new[key], changes))
    return result


def input_changes(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    """The inputs (dotted paths into nested mappings) and the resource options that differ."""
    changes = _walk("", before.get("inputs", {}), after.get("inputs", {}))
    for option in ("protect", "retainOnDelete"):
        old, new = bool(before.get(option)), bool(after.get(option))
        if old != new:
            changes.append(Change(f"({option})", old, new))
    return changes


def _walk(prefix: str, before: Any, after: Any) -> list[Change]:
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[Change] = []
        for k in sorted(before.keys() | after.keys()):
            out += _walk(f"{prefix}.{k}" if prefix else k, before.get(k), after.get(k))
        return out
    return [] if before == after else [Change(prefix, before, after)]


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


def context_digest(context: Path) -> str:
    """sha256 over the paths and contents of the files Docker sends from `context`."""
    ignore = _dockerignore(context)
    files = []
    for folder, dirs, names in os.walk(context):
        here = Path(folder).relative_to(context).as_posix()
        prefix = "" if here == "." else here + "/"
        # Skip whole folders that are left out and that no `!pattern` could bring back.
        dirs[:] = [d for d in dirs if not _ignored(prefix + d, ignore, folder=True)]
        files += [prefix + n for n in names if not _ignored(prefix + n, ignore)]
    digest = hashlib.sha256()
    for relative in sorted(files):
        path = context / relative
        if path.is_file() and not path.is_symlink():
            digest.update(relative.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


Rule = tuple[re.Pattern[str], bool, str]


def _dockerignore(context: Path) -> list[Rule]:
    """.dockerignore as (pattern, excludes?, literal start), in order: the last match decides."""
    path = context / ".dockerignore"
    rules = []
    for line in path.read_text().splitlines() if path.exists() else []:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = "".join(
            ".*" if part == "**" else re.escape(part).replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
            for part in re.split(r"(\*\*)", pattern)
        )
        literal = re.split(r"[*?\[]", pattern)[0]
        rules.append((re.compile(regex.replace(".*/", "(.*/)?") + "$"), not negated, literal))
    return rules


def _ignored(relative: str, rules: list[Rule], folder: bool = False) -> bool:
    """Whether Docker leaves the path out: a pattern matching it or any folder above it.

    For a folder, only when no re-including pattern could match something inside it."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern, excludes, _ in rules:
        if any(pattern.match(prefix) for prefix in prefixes):
            ignored = excludes
    if ignored and folder:
        return not any(
            not excludes and (not literal or literal.startswith(relative + "/"))
            for _, excludes, literal in rules
        )
    return ignored


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


def render_markdown(diff: PlanDiff) -> str:
    """The comparison as Markdown: a summary line, a diff block of resources, the cost table."""
    counts = (
        f"{len(diff.added)} to add, {len(diff.changed)} to change, {len(diff.removed)} to remove"
    )
    lines = [f"### `trackday plan --stack {diff.stack}` against `{diff.ref}`", "", counts, ""]
    if not diff.empty:
        lines.append("```diff")
        lines += [f"+ {_line(r)}" for r in diff.added]
        for resource, changes in diff.changed:
            lines.append(f"! {resource['type']} {resource['name']}")
            lines += [f"!     {c.path}: {_show(c.before)} -> {_show(c.after)}" for c in changes]
        lines += [f"- {_line(r)}" for r in diff.removed]
        lines += ["```", ""]
    lines += ["| estimated cost (USD) | before | after | change |", "| --- | ---: | ---: | ---: |"]
    for key, label in COST_KEYS.items():
        before, after, change = diff.cost_change(key)
        lines.append(f"| {label} | {before:.4f} | {after:.4f} | {change:+.4f} |")
    costs = diff.costs_after or diff.costs_before or {}
    if costs:
        lines += ["", f"Prices as of {costs.get('asOf')}; source: {costs.get('source')}."]
    for item in _unpriced(diff.costs_before, diff.costs_after):
        lines.append(f"Not priced (left out of the totals): {item}.")
    return "\n".join(lines) + "\n"


def _unpriced(*sides: dict[str, Any] | None) -> list[str]:
    items = {
        f"{u['item']}: {u['reason']}" for side in sides for u in (side or {}).get("unpriced", [])
    }
    return sorted(items)


def _key(resource: dict[str, Any]) -> tuple[str, str]:
    return resource["type"], resource["name"]


def _line(resource: dict[str, Any]) -> str:
    """Type, name and the properties `trackday plan` shows for the type."""
    from trackday.plan import key_properties

    shown = key_properties(resource["type"], resource.get("inputs", {}))
    return f"{resource['type']} {resource['name']}" + (f" ({shown})" if shown else "")


def _brief(resource: dict[str, Any]) -> dict[str, Any]:
    return {"type": resource["type"], "name": resource["name"]}


def _show(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def run(project: Path, stack: str, ref: str, as_json: bool) -> None:
    """The `--against` form of `trackday plan`: print the comparison, or one error line."""
    import typer

    from trackday.failure import fail

    try:
        diff = compare(project, stack, ref)
    except DiffError as exc:
        raise fail(exc, 2) from None
    if as_json:
        typer.echo(json.dumps(diff.to_dict(), indent=2, sort_keys=True))
    else:
        typer.echo(render_markdown(diff), nl=False)
