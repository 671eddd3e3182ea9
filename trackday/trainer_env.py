"""Running the trainer on this machine, in its own environment.

The trainer needs TensorFlow and donkeycar, whose pins conflict with Pulumi's, so it lives
in `.venv-trainer` (made by `scripts/setup trainer` on first use) and runs as a separate
process: exactly the entrypoint the container runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAINER_PYTHON_ENV = "TRACKDAY_TRAINER_PYTHON"


def trainer_python() -> str:
    """The Python with donkeycar: $TRACKDAY_TRAINER_PYTHON, else .venv-trainer (made if needed)."""
    chosen = os.environ.get(TRAINER_PYTHON_ENV)
    if chosen:
        return chosen
    subprocess.run([str(ROOT / "scripts" / "setup"), "trainer"], check=True)
    return str(ROOT / ".venv-trainer" / "bin" / "python")


def run_trainer(args: list[str]) -> int:
    """Run `python -m training.donkeycar.train ARGS` in the trainer environment; its exit code."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [trainer_python(), "-m", "training.donkeycar.train", *args]
    return subprocess.run(command, env=env, stdout=sys.stdout, stderr=sys.stderr).returncode
