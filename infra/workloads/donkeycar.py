"""The DonkeyCar trainer image on a swarm's manager, built there from this repository's training/.

The trainer runs on the manager only (`trackday.role=trainer`), so the image is built by the
manager's own Docker engine and needs no registry. Where the nodes form the swarm themselves
(gcp), the manager builds it from a source archive in the stack's bucket
(`manager_build`, infra/bootstrap/trainer_build.py); elsewhere pulumi-command copies training/
(the whole build context, see .dockerignore) over SSH and runs `docker build`. A change to
training/ or to the build arguments builds it again.
"""

from __future__ import annotations

import hashlib
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_command as command

from infra import bootstrap
from infra.bootstrap import trainer_build
from infra.bootstrap.trainer_build import TrainerBuild
from infra.nodes import NodeAccess
from infra.swarm import Swarm, connection
from infra.targets import TRAINER_DOCKERFILE, TRAINER_IMAGE, child

BUILD_DIR = "/var/tmp/trackday-build"


def source_digest(folder: Path) -> str:
    """A digest of every file under `folder` (names and contents), caches left out."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if "__pycache__" in path.parts:
            continue
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


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


def build_script(tag: str, build_args: dict[str, str]) -> str:
    """Builds the trainer image from the copied context, wherever the copy put training/."""
    args = " ".join(f"--build-arg {shlex.quote(f'{k}={v}')}" for k, v in sorted(build_args.items()))
    return bootstrap.shell_script(
        "Builds the trackday DonkeyCar trainer image on this node.",
        f"""\
dockerfile=$(find {BUILD_DIR} -path '*/{TRAINER_DOCKERFILE}' | head -n 1)
if [ -z "$dockerfile" ]; then
  echo "trackday: no {TRAINER_DOCKERFILE} under {BUILD_DIR}" >&2
  exit 1
fi
context=${{dockerfile%/{TRAINER_DOCKERFILE}}}
docker build --network host --file "$dockerfile" --tag {shlex.quote(tag)} {args} "$context"
""",
    )


@dataclass(frozen=True)
class TrainerImageArgs:
    repo_root: Path
    version: str
    build_args: dict[str, str]
    access: NodeAccess
    swarm: Swarm


class TrainerImage(pulumi.ComponentResource):
    """The trainer image, built by the manager's engine once its bootstrap is done."""

    def __init__(
        self, name: str, args: TrainerImageArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("trackday:workloads:DonkeycarTrainerImage", name, None, opts)
        training = args.repo_root / "training"
        on_manager = connection(args.access, args.swarm.manager)
        triggers = [source_digest(training), args.build_args, args.swarm.manager.instance_id]
        copied = command.remote.CopyToRemote(
            f"{name}-context",
            connection=on_manager,
            source=pulumi.FileArchive(str(training)),
            # The folder lands as BUILD_DIR/training; build_script finds it either way.
            remote_path=BUILD_DIR,
            triggers=triggers,
            # After the join token: the manager's bootstrap (Docker) is done by then.
            opts=child(self, depends_on=args.swarm.ready[:1]),
        )
        self.ref = f"{TRAINER_IMAGE}:{args.version}"
        command.remote.Command(
            f"{name}-build",
            connection=on_manager,
            create=bootstrap.remote_command(build_script(self.ref, args.build_args)),
            triggers=triggers,
            opts=child(self, depends_on=[copied]),
        )
        self.register_outputs({"ref": self.ref})
