"""The DonkeyCar trainer image on a swarm's manager, built there from this repository's training/.

The trainer runs on the manager only (`trackday.role=trainer`), so the image is built by the
manager's own Docker engine and needs no registry. The manager builds it from a source archive
the program uploads to the stack's bucket (`manager_build`, infra/bootstrap/trainer_build.py);
a change to training/ or to the build arguments builds it again.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pulumi

from infra.bootstrap import trainer_build
from infra.bootstrap.trainer_build import TrainerBuild
from infra.targets import TRAINER_IMAGE


def manager_build(
    repo_root: Path, version: str, build_args: dict[str, str]
) -> tuple[TrainerBuild, pulumi.FileAsset]:
    """What the manager is asked to build, and the archive to upload for it (written once
    per digest to the temporary folder, where `pulumi up` reads it)."""
    data = trainer_build.source_archive(repo_root)
    build = TrainerBuild(
        digest=trainer_build.digest(data),
        tag=f"{TRAINER_IMAGE}:{version}",
        build_args=tuple(sorted(build_args.items())),
    )
    path = Path(tempfile.gettempdir()) / f"trackday-trainer-{build.digest}.tar.gz"
    if not path.exists():
        path.write_bytes(data)
    return build, pulumi.FileAsset(str(path))


@dataclass(frozen=True)
class BuiltByManager:
    """The trainer image the manager built itself; `built` exists once it has."""

    ref: str
    built: pulumi.Resource
