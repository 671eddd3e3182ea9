"""Running the trainer on this machine, in its own environment.

The trainer needs TensorFlow and donkeycar, whose pins conflict with Pulumi's, so it lives
in its own virtual environment (made by `scripts/setup trainer` on first use) and runs as a
separate process: exactly the entrypoint the container runs. Each donkeycar version has
its own: `.venv-trainer` for 5.3.0 (Python 3.11), `.venv-trainer-<version>` for the others
(5.4.0 needs Python 3.12, its wheel's Requires-Python).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from infra.config import DONKEYCAR_VERSIONS, read_stack_file, stack_file
from trackday.errors import TrackdayError

ROOT = Path(__file__).resolve().parents[1]
TRAINER_PYTHON_ENV = "TRACKDAY_TRAINER_PYTHON"
DEFAULT_VERSION = "5.3.0"


class TrainerEnvError(TrackdayError):
    """The trainer's environment cannot be used; the message says what to do."""


def venv_dir(version: str) -> Path:
    """The trainer environment of one donkeycar version (as scripts/setup names it)."""
    return ROOT / (".venv-trainer" if version == DEFAULT_VERSION else f".venv-trainer-{version}")


def stack_version(stack: str) -> str:
    """The donkeycar version a stack's file asks for, else the default (5.3.0)."""
    path = stack_file(ROOT, stack)
    if not path.exists():
        return DEFAULT_VERSION
    donkeycar = read_stack_file(path).get("trackday:donkeycar")
    if not isinstance(donkeycar, dict):
        return DEFAULT_VERSION
    return str(donkeycar.get("version", DEFAULT_VERSION))


def trainer_python(version: str = DEFAULT_VERSION) -> str:
    """The Python with donkeycar `version`: $TRACKDAY_TRAINER_PYTHON, else its environment
    (made on first use)."""
    chosen = os.environ.get(TRAINER_PYTHON_ENV)
    if chosen:
        return chosen
    if version not in DONKEYCAR_VERSIONS:
        raise TrainerEnvError(
            f"donkeycar {version} is not supported: choose one of {', '.join(DONKEYCAR_VERSIONS)}"
        )
    env = {**os.environ, "DONKEYCAR_VERSION": version}
    if subprocess.run([str(ROOT / "scripts" / "setup"), "trainer"], env=env).returncode:
        raise TrainerEnvError(
            f"could not make the donkeycar {version} environment {venv_dir(version).name}: "
            f"see the output above, then rerun `DONKEYCAR_VERSION={version} scripts/setup trainer`"
        )
    return str(venv_dir(version) / "bin" / "python")


def has_nvidia_gpu() -> bool:
    """Whether this machine has an NVIDIA GPU its driver answers for (then a run needs it)."""
    if shutil.which("nvidia-smi") is None:
        return False
    return subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0


def run_trainer(args: list[str], version: str = DEFAULT_VERSION) -> int:
    """Run `python -m training.donkeycar.train ARGS` in the trainer environment; its exit code."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [trainer_python(version), "-m", "training.donkeycar.train", *args]
    # The child writes to this process's own stdout and stderr (inherited file descriptors).
    return subprocess.run(command, env=env).returncode
