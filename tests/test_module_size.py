"""Modules stay small: one over 400 lines says why at its top.

Every module of the project's packages has at most `LIMIT` lines, unless its module
docstring holds a line that starts "Over 400 lines because" and gives the reason."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("contract", "infra", "trackday", "training")
LIMIT = 400
REASON = re.compile(rf"^\s*Over {LIMIT} lines because \S", re.MULTILINE)


def _too_long(path: Path, root: Path = ROOT) -> str | None:
    """`path: N lines` when the module is over the limit and its docstring gives no reason."""
    text = path.read_text()
    lines = len(text.splitlines())
    if lines <= LIMIT:
        return None
    docstring = ast.get_docstring(ast.parse(text, str(path))) or ""
    return None if REASON.search(docstring) else f"{path.relative_to(root)}: {lines} lines"


def test_every_module_is_under_the_limit_or_says_why() -> None:
    modules = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    assert len(modules) > 50  # the walk found the packages
    found = [problem for path in modules if (problem := _too_long(path))]
    assert not found, (
        f"split these by job, or write 'Over {LIMIT} lines because ...' in the docstring: "
        + ", ".join(found)
    )


def test_the_check_wants_a_reason_only_over_the_limit(tmp_path: Path) -> None:
    body = "x = 1\n" * LIMIT
    (tmp_path / "short.py").write_text('"""Short."""\n' + "x = 1\n" * (LIMIT - 1))
    (tmp_path / "long.py").write_text('"""Long."""\n' + body)
    (tmp_path / "reasoned.py").write_text(
        f'"""Long.\n\nOver {LIMIT} lines because the table is one piece.\n"""\n' + body
    )
    assert _too_long(tmp_path / "short.py", tmp_path) is None
    assert _too_long(tmp_path / "long.py", tmp_path) == f"long.py: {LIMIT + 1} lines"
    assert _too_long(tmp_path / "reasoned.py", tmp_path) is None
