"""deepracer-utils' sample data and the library itself, fetched from PyPI once and cached.

The source distribution of deepracer-utils (the DeepRacer community's log-analysis library)
carries real runs: DRfC with 1 and 3 workers, the retired console's log download, DeepRacer on
AWS training and evaluation downloads, and a trained model with camera pictures. The tests read
them with trackday and compare with what deepracer-utils computes, run in its own virtual
environment (reference-requirements.txt says why). Both live under .cache/deepracer-utils/,
never in git; the first run downloads them (PyPI must be reachable then).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "1.5.6"
HERE = Path(__file__).resolve().parent
CACHE = HERE.parents[1] / ".cache" / "deepracer-utils"
REFERENCE = HERE / "reference.py"
REQUIREMENTS = HERE / "reference-requirements.txt"
LOG_RUNS = (
    "sample-drfc-1-logs",
    "sample-drfc-3-logs",
    "sample-console-logs",
    "sample-droa-solution-logs",
    "sample-droa-eval-only",
    "sample-continous-action-logs.tar.gz",
    "sample-droa-solution-logs.tar.gz",
)


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr[-2000:]}")


def sdist_root() -> Path:
    """The unpacked sdist: `pip download --no-binary :all: --no-deps deepracer-utils==VERSION`."""
    root = CACHE / f"deepracer_utils-{VERSION}"
    if root.is_dir():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    archive = CACHE / f"deepracer_utils-{VERSION}.tar.gz"
    if not archive.is_file():
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-binary",
                ":all:",
                "--no-deps",
                f"deepracer-utils=={VERSION}",
                "-d",
                str(CACHE),
            ],
            "downloading the deepracer-utils sdist",
        )
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch, tarfile.open(archive) as sdist:
        sdist.extractall(scratch, filter="data")
        try:
            os.replace(Path(scratch) / root.name, root)  # whole or not at all
        except OSError:
            if not root.is_dir():  # not another test session that got there first
                raise
    return root


def logs_dir() -> Path:
    return sdist_root() / "tests" / "deepracer" / "logs"


def model_dir() -> Path:
    """model_<n>.pb frozen graphs, model_metadata.json; pictures/ beside it."""
    return sdist_root() / "tests" / "deepracer" / "model" / "sample-model" / "model"


def reference_python() -> Path:
    """A virtual environment with deepracer-utils, made once from reference-requirements.txt."""
    venv = CACHE / f"venv-{VERSION}"
    python = venv / "bin" / "python"
    if (venv / "complete").is_file():
        return python
    CACHE.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "venv", "--clear", str(venv)], "making the reference venv")
    _run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)],
        "installing deepracer-utils into the reference venv",
    )
    (venv / "complete").write_text(VERSION)
    return python


def reference(runs: list[Path]) -> dict:
    """deepracer-utils' own figures for each run (see reference.py), keyed by str(run)."""
    import json

    done = subprocess.run(
        [str(reference_python()), str(REFERENCE), *map(str, runs)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"reference.py failed: {done.stderr[-3000:]}")
    return json.loads(done.stdout)
