"""Which stacks a git change touches: what the pull-request, deploy and drift workflows run on.

A stack is touched when its own file `Pulumi.<stack>.yaml` changes, when anything every stack
is built from changes (the program, the trainer image's sources, the dependencies, the
policy pack), or when a file changes under a path the stack file names (a DeepRacer
`custom_files` folder holding `reward_function.py`, say). Stacks of the `local` target run
on a person's own Docker engine, not from CI, so they are left out.

    python -m trackday.changed_stacks BASE [HEAD]   # stacks touched between two refs
    python -m trackday.changed_stacks --all         # every cloud stack (the drift check)

prints a GitHub Actions matrix: {"include": [{"stack": "gcp", "target": "gcp"}, ...]}.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from infra.config import list_stacks, read_stack_file, stack_file

# What every stack is built from: a change here may change any stack.
SHARED = (
    "Pulumi.yaml",
    "__main__.py",
    "requirements.txt",
    "infra/",
    "training/",  # the trainer image is built from these sources
    "policy/",  # previews and updates run the policy pack
)


def stack_target(root: Path, stack: str) -> str:
    """The stack's `trackday:target` (the config's default, `local`, when unset)."""
    return str(read_stack_file(stack_file(root, stack)).get("trackday:target", "local"))


def referenced_paths(root: Path, stack: str) -> list[str]:
    """Folders and files of this repository that the stack file names in its values."""
    found = set()
    for value in _strings(read_stack_file(stack_file(root, stack))):
        candidate = value.strip().removeprefix("./").rstrip("/")
        if not candidate or candidate.startswith(("/", "..")) or "://" in candidate:
            continue
        path = root / candidate
        if path.exists() and path.resolve().is_relative_to(root.resolve()):
            found.add(candidate + ("/" if path.is_dir() else ""))
    return sorted(found)


def cloud_stacks(root: Path) -> list[str]:
    """The stacks CI deploys: every shipped stack whose target is a cloud."""
    return [s for s in list_stacks(root) if stack_target(root, s) != "local"]


def touched_stacks(root: Path, changed: Iterable[str]) -> list[str]:
    """The cloud stacks in `root` that the changed paths (relative to `root`) touch."""
    changed = list(changed)
    stacks = cloud_stacks(root)
    if any(_under(path, SHARED) for path in changed):
        return stacks
    return [
        stack
        for stack in stacks
        if f"Pulumi.{stack}.yaml" in changed
        or any(_under(path, referenced_paths(root, stack)) for path in changed)
    ]


def changed_paths(root: Path, base: str, head: str = "HEAD") -> list[str]:
    """Paths that differ between the merge base of `base` and `head`, and `head`."""
    done = subprocess.run(
        ["git", "-C", str(root), "diff", "--name-only", f"{base}...{head}"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        reason = (done.stderr.strip() or "git diff failed").splitlines()[0]
        raise SystemExit(f"error: cannot compare {base}...{head}: {reason}")
    return [line for line in done.stdout.splitlines() if line]


def matrix(root: Path, stacks: Iterable[str]) -> dict[str, Any]:
    return {"include": [{"stack": s, "target": stack_target(root, s)} for s in stacks]}


def main(argv: list[str]) -> int:
    root = Path.cwd()
    if argv == ["--all"]:
        stacks = cloud_stacks(root)
    elif 1 <= len(argv) <= 2 and not argv[0].startswith("-"):
        stacks = touched_stacks(root, changed_paths(root, *argv))
    else:
        print("usage: python -m trackday.changed_stacks BASE [HEAD] | --all", file=sys.stderr)
        return 2
    print(json.dumps(matrix(root, stacks)))
    return 0


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def _under(path: str, prefixes: Iterable[str]) -> bool:
    return any(path == p or (p.endswith("/") and path.startswith(p)) for p in prefixes)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
