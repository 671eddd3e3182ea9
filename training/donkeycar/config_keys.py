"""Every config key the installed donkeycar reads, for checking `--set KEY=VALUE`.

The template (`cfg_complete.py`) does not list every key donkeycar reads: `CACHE_IMAGES`,
`MEM_DEPTH`, `TRAIN_FILTER`, `FREEZE_LAYERS` and others are read with a default through
`getattr(cfg, 'KEY', default)`. The truth is donkeycar's own source, so the installed
package is read (not imported: parts import hardware libraries) for `cfg.KEY`,
`config.KEY`, `self.cfg.KEY` and `getattr(cfg, 'KEY', ...)`.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import warnings
from functools import cache
from pathlib import Path

# The names donkeycar gives a Config object in its code.
_CONFIG_NAMES = {"cfg", "config", "myconfig", "conf"}


def _is_config(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in _CONFIG_NAMES
    return isinstance(node, ast.Attribute) and node.attr in _CONFIG_NAMES


def _is_key(name: str) -> bool:
    return name.isidentifier() and name == name.upper() and not name.startswith("_")


def keys_read_by(source: str) -> set[str]:
    """The upper-case config keys one module reads."""
    keys: set[str] = set()
    with warnings.catch_warnings():  # donkeycar's own invalid escapes are not ours to report
        warnings.simplefilter("ignore", SyntaxWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_key(node.attr) and _is_config(node.value):
            keys.add(node.attr)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "hasattr"}
            and len(node.args) >= 2
            and _is_config(node.args[0])
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _is_key(node.args[1].value)
        ):
            keys.add(node.args[1].value)
    return keys


@cache
def donkeycar_keys() -> frozenset[str]:
    """The keys the installed donkeycar's code reads (its templates' settings not included)."""
    spec = importlib.util.find_spec("donkeycar")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    keys: set[str] = set()
    for path in Path(next(iter(spec.submodule_search_locations))).rglob("*.py"):
        try:
            keys |= keys_read_by(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue  # a file this Python cannot parse reads no key we could check
    return frozenset(keys)


def unknown_keys(wanted: list[str], known: set[str]) -> str | None:
    """A message naming the keys not in `known`, each with its nearest known names."""
    unknown = [k for k in wanted if k not in known]
    if not unknown:
        return None
    hints = [
        f"{k} (close: {', '.join(difflib.get_close_matches(k, sorted(known), 2)) or 'none'})"
        for k in unknown
    ]
    return f"--set: unknown donkeycar setting {'; '.join(hints)}"
