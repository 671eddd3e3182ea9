"""Which record keys a tub carries, from its manifest, before anything is uploaded or trained.

A tub's `manifest.json` starts with the list of inputs the car's tub writer recorded
(donkeycar's `datastore_v2.Manifest`); a key missing there is missing in every record. Read
from tub folders (`trackday donkey archive/train`) and from archives (`submit`), so a
behavior, localizer or IMU model on a tub recorded without those parts is refused on the
laptop; the trainer then checks every record (training/donkeycar/checks.py).
"""

from __future__ import annotations

import ast
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import zstandard

from training.donkeycar.model_types import EXTRA_RECORD_KEYS

TUB_MANIFEST = "manifest.json"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
CONFIG_FILES = ("config.py", "myconfig.py")  # myconfig.py's settings win, as in load_config


@dataclass
class TubFacts:
    """What a set of tubs recorded, and the model type their car config asks for."""

    inputs: dict[str, list[str]] = field(default_factory=dict)
    configs: dict[str, str] = field(default_factory=dict)

    @property
    def config_model_type(self) -> str | None:
        """DEFAULT_MODEL_TYPE as the car's config.py, then myconfig.py, assign it literally."""
        found = None
        for name in CONFIG_FILES:
            found = _literal_assignment(self.configs.get(name, ""), "DEFAULT_MODEL_TYPE") or found
        return found

    def problem_for(self, model_type: str | None) -> str | None:
        """Why these tubs cannot train `model_type` (default: the car config's), or None."""
        chosen = model_type or self.config_model_type
        return inputs_problem(chosen, self.inputs) if chosen else None


def _literal_assignment(source: str, key: str) -> str | None:
    """The last `KEY = 'literal'` at a file's top level (config files are plain assignments)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    value = None
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == key for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            value = node.value.value
    return value


def manifest_inputs(text: str) -> list[str]:
    """The inputs line of a tub manifest; empty when it cannot be read (the tub check says why)."""
    try:
        inputs = json.loads(text.splitlines()[0])
    except (ValueError, IndexError):
        return []
    return [i for i in inputs if isinstance(i, str)] if isinstance(inputs, list) else []


def folder_facts(tubs: list[Path], config_dir: Path | None) -> TubFacts:
    """The recorded inputs of each tub folder, by folder name, and the car config beside them."""
    facts = TubFacts()
    for tub in tubs:
        try:
            facts.inputs[tub.name] = manifest_inputs((tub / TUB_MANIFEST).read_text())
        except (OSError, UnicodeDecodeError):
            facts.inputs[tub.name] = []
    for name in CONFIG_FILES if config_dir else ():
        path = config_dir / name  # type: ignore[operator]
        if path.is_file():
            facts.configs[name] = path.read_text(errors="replace")
    return facts


def archive_facts(archive: Path) -> TubFacts:
    """The same for an archive: `tubs/<name>/` and `config/` (trackday's layout), or one tub
    with its config files at the root (the old scripts' layout)."""
    facts = TubFacts()
    with archive.open("rb") as raw:
        zstd = raw.read(4) == ZSTD_MAGIC
        raw.seek(0)
        stream = zstandard.ZstdDecompressor().stream_reader(raw) if zstd else raw
        with tarfile.open(fileobj=stream, mode="r|" if zstd else "r|*") as tar:
            for member in tar:
                path = PurePosixPath(member.name)
                parts = [p for p in path.parts[:-1] if p != "."]
                wanted = path.name == TUB_MANIFEST or (
                    path.name in CONFIG_FILES and parts in ([], ["config"])
                )
                data = tar.extractfile(member) if wanted and member.isfile() else None
                if data is None:
                    continue
                text = data.read().decode("utf-8", "replace")
                if path.name == TUB_MANIFEST:
                    facts.inputs[parts[-1] if parts else archive.name.split(".")[0]] = (
                        manifest_inputs(text)
                    )
                else:
                    facts.configs[path.name] = text
    return facts


def inputs_problem(model_type: str, inputs: dict[str, list[str]]) -> str | None:
    """Why tubs with these recorded inputs cannot train `model_type`, or None."""
    needed = EXTRA_RECORD_KEYS.get(model_type, ())
    lacking = {
        tub: [k for k in needed if k not in recorded]
        for tub, recorded in inputs.items()
        if recorded and any(k not in recorded for k in needed)
    }
    if not lacking:
        return None
    where = "; ".join(f"tub {tub} lacks {', '.join(keys)}" for tub, keys in lacking.items())
    return (
        f"model type {model_type} reads keys these tubs never recorded ({where}): record with "
        f"the {model_type} parts enabled on the car, or choose another --model-type"
    )
