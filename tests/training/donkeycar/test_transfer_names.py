"""The names a bucket listing gives a transfer model's files stay inside its folder here.

Object stores accept keys that a path would read as leaving the folder (`a/../b` on S3); the
loopback servers normalise them away, so the guard is checked on the names themselves.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from training.donkeycar.checks import TrainerError
from training.donkeycar.transfer import relative_name

PREFIX = "s3://b/runs/donkeycar/r/pilot.savedmodel/"


def test_a_file_of_the_model_keeps_its_place() -> None:
    assert relative_name(PREFIX + "variables/v.index", PREFIX) == PurePosixPath("variables/v.index")


@pytest.mark.parametrize(
    "name",
    [
        PREFIX + "../../../../escape.txt",
        PREFIX + "variables/../../x",
        PREFIX + "./x",
        PREFIX + "a//b",
        PREFIX + "a\\..\\b",
        PREFIX + "x\0",
        "s3://b/runs/donkeycar/r/pilot.savedmodel.evil/x",
    ],
)
def test_a_name_that_could_leave_the_folder_is_refused(name: str) -> None:
    with pytest.raises(TrainerError, match="the listing holds an unsafe name"):
        relative_name(name, PREFIX)
