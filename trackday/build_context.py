"""What Docker sends of a build context: the files `.dockerignore` leaves in, and a digest.

`trackday plan --against` shows a change to an image's files (training/) through this
digest; it reads `.dockerignore` the way Docker does: patterns in order, the last match
decides, `**` spans folders, `!pattern` brings paths back.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path


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
