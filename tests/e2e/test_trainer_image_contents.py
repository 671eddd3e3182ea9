"""What the trainer image carries of this repository: the code that runs in it only.

Docker itself reads `.dockerignore` here (the real build of tests/e2e/conftest.py), so this
checks the rules as Docker applies them, not as trackday's own reader does."""

from __future__ import annotations

import subprocess

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.timeout(3600)]


def test_image_leaves_the_operator_side_deepracer_code_out(
    docker_engine: str, trainer_image: str
) -> None:
    probe = "import os; print(' '.join(sorted(os.listdir('/opt/trackday-src/training'))))"
    result = subprocess.run(
        [docker_engine, "run", "--rm", "--network", "none", "--entrypoint", "python",
         trainer_image, "-c", probe],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["__init__.py", "donkeycar", "storage"]
