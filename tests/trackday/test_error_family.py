"""Every exception class trackday/ defines is a `TrackdayError`, so the one handler in
trackday/cli.py prints it as one verbatim line.

Read from the source with `ast` (no trackday module is imported): each class's bases are
followed through the module's imports, to a class defined in trackday/ or to a name outside
it (a builtin, or a class of another package, looked up there)."""

from __future__ import annotations

import ast
import builtins
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "trackday"
BASE = (f"{PACKAGE}.errors", "TrackdayError")

Key = tuple[str, str]  # (module, name)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _read_package() -> tuple[dict[Key, list[ast.expr]], dict[str, dict[str, Key | str]]]:
    """Classes (module, name) -> their base expressions; per module, each imported name ->
    (module, name) for `from m import n`, or the module's name for `import m` / a module."""
    classes: dict[Key, list[ast.expr]] = {}
    names: dict[str, dict[str, Key | str]] = {}
    modules = {_module_name(p): p for p in (ROOT / PACKAGE).rglob("*.py")}
    for module, path in modules.items():
        table: dict[str, Key | str] = {}
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                classes[(module, node.name)] = node.bases
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    table[alias.asname or alias.name] = (
                        full if full in modules else (node.module, alias.name)
                    )
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    table[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0]
                    )
        names[module] = table
    return classes, names


CLASSES, NAMES = _read_package()


def _resolve(module: str, expr: ast.expr) -> Key | None:
    """The (module, name) a base expression names, following imports and re-exports."""
    if isinstance(expr, ast.Name):
        key: Key = (module, expr.id)
    elif isinstance(expr, ast.Attribute):
        dotted = []
        while isinstance(expr, ast.Attribute):
            dotted.insert(0, expr.attr)
            expr = expr.value
        if not isinstance(expr, ast.Name):
            return None
        bound = NAMES.get(module, {}).get(expr.id, expr.id)
        if isinstance(bound, tuple):  # `from docker import errors`
            bound = ".".join(bound)
        key = (".".join([bound, *dotted[:-1]]), dotted[-1])
    else:
        return None
    for _ in range(10):  # re-exports: a name imported into the module it is taken from
        if key in CLASSES or key[0] not in NAMES:
            return key
        bound = NAMES[key[0]].get(key[1])
        if not isinstance(bound, tuple):
            return key
        key = bound
    return key


def _external_is_exception(key: Key) -> bool:
    module, name = key
    if module in NAMES and name not in NAMES[module]:
        value = getattr(builtins, name, None)
    else:
        value = getattr(importlib.import_module(module), name, None)
    return isinstance(value, type) and issubclass(value, BaseException)


def _bases(key: Key) -> list[Key]:
    return [b for b in (_resolve(key[0], e) for e in CLASSES[key]) if b is not None]


def _is_exception(key: Key) -> bool:
    if key not in CLASSES:
        return _external_is_exception(key)
    return any(_is_exception(base) for base in _bases(key))


def _is_trackday_error(key: Key) -> bool:
    return key == BASE or (key in CLASSES and any(_is_trackday_error(b) for b in _bases(key)))


def test_every_exception_class_in_trackday_is_a_trackday_error() -> None:
    exceptions = sorted(k for k in CLASSES if _is_exception(k))
    # The walk finds them (so the test cannot pass by finding none), through re-exports too.
    for known in [
        ("trackday.stack", "StackError"),
        ("trackday.dashboard.stacks", "BucketError"),
        ("trackday.plan_sides", "DiffError"),
        ("trackday.runs", "RunError"),
    ]:
        assert known in exceptions
    outside = [f"{m}.{n}" for m, n in exceptions if not _is_trackday_error((m, n))]
    assert not outside, f"derive these from trackday.errors.TrackdayError: {outside}"


def test_the_walk_sees_a_class_that_is_not_in_the_family() -> None:
    """The check itself: a plain Exception subclass is an exception, and not in the family."""
    CLASSES[("trackday.probe", "Stray")] = [ast.Name("ValueError")]
    NAMES["trackday.probe"] = {}
    try:
        assert _is_exception(("trackday.probe", "Stray"))
        assert not _is_trackday_error(("trackday.probe", "Stray"))
    finally:
        del CLASSES[("trackday.probe", "Stray")], NAMES["trackday.probe"]
