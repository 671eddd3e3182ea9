"""The check a run passes before it is deployed, by `trackday dr start-training` or `pulumi up`.

The same checks as `trackday dr validate`: on the world's real track when its file is at hand
(`--tracks-dir`, $TRACKDAY_TRACKS_DIR, or where `trackday dr tracks` puts them), else the
reward function as source (syntax, imports, its name) and the two JSON files in full.
"""

from __future__ import annotations

import os
from pathlib import Path

from training.deepracer.problems import Problem
from training.deepracer.settings import DeepRacerSettings

TRACKS_ENV = "TRACKDAY_TRACKS_DIR"
DEFAULT_TRACKS = Path.home() / ".cache" / "trackday" / "tracks"


def tracks_dir_for(settings: DeepRacerSettings, given: Path | None = None) -> Path | None:
    """The first folder holding the settings' world, None when no folder has it."""
    for candidate in (given, os.environ.get(TRACKS_ENV), DEFAULT_TRACKS / settings.simulator.tag):
        if candidate and (Path(candidate) / f"{settings.world}.npy").is_file():
            return Path(candidate)
    return None


def preflight(
    folder: Path, settings: DeepRacerSettings, tracks_dir: Path | None = None
) -> list[Problem]:
    """The problems of the custom files in `folder`; the run may start when none is more
    than a warning."""
    from training.deepracer.validate import validate_custom_files  # numpy: only when checking

    return validate_custom_files(folder, settings, tracks_dir_for(settings, tracks_dir)).problems
