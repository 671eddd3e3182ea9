"""One definition of each Swarm label, credentials secret name and stack output key.

`contract/swarm.py` and `contract/outputs.py` define them; every other module reads them
from there. This walks the project's sources (not the tests, which state expected values
on purpose) and fails on a second literal of any of them: in Python, any string constant
but a docstring (f-string parts included); in the dashboard's templates and scripts, any
line.

What a text search cannot tell apart is left out and said here: output keys that are one
plain word (`target`, `image`, `training`, `region`, ...) are also ordinary words, so only
the camelCase keys are checked; the credentials secret's `-s3` suffix is checked where it
ends a name built in an f-string, except the first argument of a call, which is a Pulumi
resource's logical name (URNs; renaming one replaces the resource).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from contract import outputs, swarm

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("bench", "contract", "infra", "policy", "scripts", "trackday", "training")
SKIP = {".venv", "__pycache__", "node_modules"}
TEXT_SUFFIXES = {".html", ".js", ".sh", ".yaml", ".yml", ""}

SWARM_DEFINITIONS = ROOT / "contract" / "swarm.py"
OUTPUTS_DEFINITIONS = ROOT / "contract" / "outputs.py"

# The same spelling, another namespace: (file, key) -> why it is not an output key.
OTHER_MEANINGS = {
    ("infra/prices.py", "machineType"): "the GCE instance's input property",
    ("policy/machines.py", "machineType"): "the GCE instance's input property",
    ("infra/config.py", "machineType"): "the stack config key nodes.machineType",
    ("infra/offline.py", "logGroup"): "part of the Pulumi type token aws:cloudwatch/logGroup",
    ("infra/workloads/deepracer.py", "bucketUrl"): (
        "an input property of the RunFiles dynamic resource, kept in Pulumi state: renaming "
        "it would make every deployed run look moved"
    ),
}


def _swarm_literals() -> list[str]:
    labels = [v for k, v in vars(swarm).items() if k.endswith("_LABEL") and isinstance(v, str)]
    return [*labels, swarm.CREDENTIALS_FILE, "/run/secrets/", "node.labels."]


def _output_keys() -> set[str]:
    keys = set()
    for record in vars(outputs).values():
        if isinstance(record, type) and issubclass(record, outputs.Outputs):
            keys |= {record.key(field) for field in record.model_fields}
    return {key for key in keys if key != key.lower()}


def _source_files() -> Iterator[Path]:
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and not SKIP & set(path.relative_to(ROOT).parts):
                yield path


def _strings(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of every string a file holds: constants but docstrings for Python,
    lines for templates and scripts."""
    if path.suffix == ".py":
        tree = ast.parse(path.read_text(), str(path))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and id(node) not in docstrings:
                yield node.lineno, text
    elif path.suffix in TEXT_SUFFIXES:
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            return
        yield from enumerate(text.splitlines(), 1)


def _second_literals(literals: list[str], definitions: Path, whole_words: bool) -> list[str]:
    found = []
    for path in _source_files():
        if path == definitions:
            continue
        where = path.relative_to(ROOT).as_posix()
        for line, text in _strings(path):
            for literal in literals:
                hit = (
                    re.search(rf"\b{re.escape(literal)}\b", text)
                    if whole_words
                    else literal in text
                )
                if hit and (where, literal) not in OTHER_MEANINGS:
                    found.append(f"{where}:{line}: {literal!r} in {text[:60]!r}")
    return found


def test_each_swarm_label_and_secret_file_is_defined_once() -> None:
    literals = _swarm_literals()
    assert {"trackday.role", "trackday.workload", "s3-credentials"} <= set(literals)
    found = _second_literals(literals, SWARM_DEFINITIONS, whole_words=False)
    assert not found, "read these from contract/swarm.py:\n" + "\n".join(found)


def test_the_credentials_secret_name_is_built_once() -> None:
    """`credentials_secret_name` is the one f-string ending in `-s3` that is not a Pulumi
    resource's logical name (a call's first argument)."""
    found = []
    for path in _source_files():
        if path.suffix != ".py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        names = {
            id(call.args[0]) for call in ast.walk(tree) if isinstance(call, ast.Call) and call.args
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.JoinedStr)
                and isinstance(node.values[-1], ast.Constant)
                and str(node.values[-1].value).endswith("-s3")
                and id(node) not in names
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == ["contract/swarm.py:" + str(_secret_name_line())], found


def _secret_name_line() -> int:
    tree = ast.parse(SWARM_DEFINITIONS.read_text())
    function = next(
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef) and n.name == "credentials_secret_name"
    )
    return next(n.lineno for n in ast.walk(function) if isinstance(n, ast.JoinedStr))


def test_each_output_key_is_defined_once() -> None:
    keys = sorted(_output_keys())
    assert {"bucketUrl", "s3Endpoint", "managerAddress", "nodeCount"} <= set(keys)
    found = _second_literals(keys, OUTPUTS_DEFINITIONS, whole_words=True)
    assert not found, "read these through contract/outputs.py's records:\n" + "\n".join(found)


def test_the_search_finds_a_second_literal(tmp_path: Path) -> None:
    """The check itself: a literal in code is found, the same word in a docstring is not."""
    probe = tmp_path / "probe.py"
    probe.write_text('"""bucketUrl in a docstring"""\nx = {"bucketUrl": 1}\n')
    strings = list(_strings(probe))
    assert strings == [(2, "bucketUrl")]
