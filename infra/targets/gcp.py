"""Target `gcp`: Google Cloud storage, identity and trainer image for Vertex AI custom jobs.

pulumi-gcp has no Vertex AI custom-job resource, so the stack provisions what a job needs
and `trackday donkey submit` creates the job from the outputs (trackday/vertex.py):
the APIs; a private, versioned bucket (uniform bucket-level access, public access
prevention enforced, old runs moved to a colder class, deleted versions kept a while,
incomplete uploads aborted, retained by `pulumi destroy` unless the stack opts out:
infra/targets/gcp_storage.py); a
trainer service account
holding only object access on that bucket and read access on the image repository (roles
bound to those resources, not the project), with a key only when the stack asks; an
Artifact Registry Docker repository; the trainer image built and pushed there.

With `gcp.nodePool`, the stack also declares the node pool every cloud target has: Compute
Engine GPU VMs (guest accelerators, spot or standard, stopped for host maintenance) running as
the trainer service account, in a network of their own whose firewall opens SSH and the Docker
API only to `network.allowedCidrs` and Swarm's ports only between the nodes, joined into one
swarm (infra/swarm.py).

Outputs besides `target`, `bucketUrl` and `image`: `project`, `region`,
`trainerServiceAccount`, `imageRepository`, `training` (the Vertex AI machine and
donkeycar settings), and `trainerKey` (secret) when `gcp.serviceAccountKey` is true. With
`gcp.nodePool`, also the swarm's outputs (infra/targets/swarm_outputs.py) and `zone`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_docker_build as docker_build
import pulumi_gcp as gcp

from contract.outputs import GcpOutputs, VertexTraining
from infra import catalog
from infra.config import StackConfig
from infra.targets import TRAINER_DOCKERFILE, TRAINER_IMAGE, TargetArgs, child, trainer_build_args
from infra.targets.gcp_nodes import (
    Network,
    NetworkArgs,
    NodePool,
    NodePoolArgs,
    SwarmJoinSecret,
    SwarmJoinSecretArgs,
)
from infra.targets.gcp_storage import Bucket, BucketArgs
from infra.targets.swarm_outputs import SwarmNodes, pool_and_swarm
from infra.workloads.donkeycar import manager_build

APIS = (
    "aiplatform.googleapis.com",
    "artifactregistry.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "storage.googleapis.com",
)
# The node pool's VMs need Compute Engine besides.
NODE_POOL_APIS = ("compute.googleapis.com", "secretmanager.googleapis.com")
BUCKET_ROLE = "roles/storage.objectUser"
REPOSITORY_ROLE = "roles/artifactregistry.reader"


class ProjectApis(pulumi.ComponentResource):
    """The Google APIs the stack uses, enabled (left enabled on destroy: others may use them)."""

    def __init__(
        self, name: str, apis: tuple[str, ...], opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("trackday:gcp:ProjectApis", name, None, opts)
        self.services = [
            gcp.projects.Service(
                f"{name}-{api.split('.')[0]}",
                service=api,
                disable_on_destroy=False,
                opts=child(self),
            )
            for api in apis
        ]
        self.register_outputs({"apis": list(apis)})


@dataclass(frozen=True)
class TrainerIdentityArgs:
    account_id: str
    bucket: pulumi.Input[str]
    repository: gcp.artifactregistry.Repository
    create_key: bool


class TrainerIdentity(pulumi.ComponentResource):
    """The service account Vertex AI jobs run as, with roles on the bucket and repository only."""

    def __init__(
        self, name: str, args: TrainerIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("trackday:gcp:TrainerIdentity", name, None, opts)
        self.account = gcp.serviceaccount.Account(
            f"{name}-account",
            account_id=args.account_id,
            display_name="trackday trainer (Vertex AI custom jobs)",
            opts=child(self),
        )
        member = self.account.email.apply(lambda email: f"serviceAccount:{email}")
        gcp.storage.BucketIAMMember(
            f"{name}-bucket-objects",
            bucket=args.bucket,
            role=BUCKET_ROLE,
            member=member,
            opts=child(self),
        )
        gcp.artifactregistry.RepositoryIamMember(
            f"{name}-repository-reader",
            project=args.repository.project,
            location=args.repository.location,
            repository=args.repository.repository_id,
            role=REPOSITORY_ROLE,
            member=member,
            opts=child(self),
        )
        self.email = self.account.email
        self.key: pulumi.Output[str] | None = None
        if args.create_key:
            key = gcp.serviceaccount.Key(
                f"{name}-key",
                service_account_id=self.account.name,
                opts=child(self, additional_secret_outputs=["privateKey"]),
            )
            self.key = pulumi.Output.secret(key.private_key)
        self.register_outputs({"email": self.email})


@dataclass(frozen=True)
class TrainerImageArgs:
    repo_root: Path
    location: str
    repository_id: str
    build_args: dict[str, str]
    tag: str
    labels: dict[str, str] = field(default_factory=dict)


class TrainerImage(pulumi.ComponentResource):
    """An Artifact Registry Docker repository and the trainer image, built and pushed to it."""

    def __init__(
        self, name: str, args: TrainerImageArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("trackday:gcp:TrainerImage", name, None, opts)
        self.repository = gcp.artifactregistry.Repository(
            f"{name}-repository",
            repository_id=args.repository_id,
            location=args.location,
            format="DOCKER",
            description="trackday trainer images",
            labels=args.labels,
            opts=child(self),
        )
        registry = f"{args.location}-docker.pkg.dev"
        self.repository_url = self.repository.registry_uri
        token = gcp.organizations.get_client_config_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).access_token
        image = docker_build.Image(
            f"{name}-image",
            context=docker_build.BuildContextArgs(location=str(args.repo_root)),
            dockerfile=docker_build.DockerfileArgs(
                location=str(args.repo_root / TRAINER_DOCKERFILE)
            ),
            build_args=args.build_args,
            platforms=[docker_build.Platform.LINUX_AMD64],
            tags=[self.repository_url.apply(lambda url: f"{url}/{TRAINER_IMAGE}:{args.tag}")],
            push=True,
            # Previews (pull-request checks) must not build a multi-GB GPU image.
            build_on_preview=False,
            network=docker_build.NetworkMode.HOST,
            registries=[
                docker_build.RegistryArgs(
                    address=registry,
                    username="oauth2accesstoken",
                    password=pulumi.Output.secret(token),
                )
            ],
            opts=child(self),
        )
        # The digest-pinned reference: a job runs exactly the image this stack pushed.
        self.ref = image.ref
        self.register_outputs({"ref": self.ref})


class GcpTarget(pulumi.ComponentResource):
    """The `gcp` target: APIs, bucket, trainer identity, repository and image (and nodes)."""

    def __init__(self, name: str, args: TargetArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("trackday:targets:Gcp", name, None, opts)
        config = args.config
        gcp_config = config.gcp
        assert gcp_config is not None, "infra.config guarantees the gcp section for target gcp"
        self.config = config
        provider = gcp.Provider(
            f"{name}-provider",
            project=gcp_config.project,
            region=gcp_config.region,
            opts=child(self),
        )
        wanted = APIS + (NODE_POOL_APIS if gcp_config.node_pool else ())
        apis = ProjectApis(f"{name}-apis", wanted, opts=child(self, providers=[provider]))
        # Everything else waits for the APIs it calls.
        after_apis = child(self, providers=[provider], depends_on=apis.services)
        labels = {**config.tags, "trackday-stack": args.stack}
        self.storage = Bucket(
            f"{name}-storage",
            BucketArgs(
                name=config.storage.bucket,
                location=gcp_config.region,
                protect=config.storage.protect,
                runs_cold_after_days=config.storage.runs_cold_after_days,
                keep_deleted_days=config.storage.keep_deleted_days,
                labels=labels,
            ),
            opts=after_apis,
        )
        self.image = TrainerImage(
            f"{name}-trainer",
            TrainerImageArgs(
                repo_root=args.repo_root,
                location=gcp_config.region,
                repository_id=_resource_id(f"{name}-images", 63),
                build_args=trainer_build_args(config, gpu=True),
                tag=config.donkeycar.version,
                labels=labels,
            ),
            opts=after_apis,
        )
        self.identity = TrainerIdentity(
            f"{name}-identity",
            TrainerIdentityArgs(
                account_id=_resource_id(f"{name}-trainer", 30),
                bucket=self.storage.name,
                repository=self.image.repository,
                create_key=gcp_config.service_account_key,
            ),
            opts=after_apis,
        )
        # Resolved by infra/config.py from the dated zone table (infra/cloud_rules.py).
        self.zone = gcp_config.zone
        self.nodes = (
            self._node_pool(name, args, labels, after_apis) if gcp_config.node_pool else None
        )
        self.docker_provider = None  # not yet: `trackday dr` runs on the swarm over SSH
        self.run_network = None
        self.register_outputs(self.stack_outputs())

    def _node_pool(
        self, name: str, args: TargetArgs, labels: dict[str, str], opts: pulumi.ResourceOptions
    ) -> SwarmNodes:
        config = args.config
        assert config.gcp is not None
        network = Network(
            f"{name}-network",
            NetworkArgs(region=config.gcp.region, allowed_cidrs=config.network.allowed_cidrs),
            opts=opts,
        )
        join = SwarmJoinSecret(
            f"{name}-swarm-join",
            SwarmJoinSecretArgs(
                project=config.gcp.project,
                secret_id=_resource_id(f"{name}-swarm-join", 255),
                manager_account=self.identity.email,
                workers=config.nodes.count > 1,
                worker_account_id=_resource_id(f"{name}-workers", 30),
                bucket=self.storage.name,
                labels=labels,
            ),
            opts=opts,
        )
        return pool_and_swarm(
            name,
            self,
            args,
            "gcp",
            lambda spec, access: NodePool(
                f"{name}-nodes",
                NodePoolArgs(
                    spec=spec,
                    access=access,
                    config=config,
                    zone=self.zone,
                    subnet=network.subnet.id,
                    service_account=self.identity.email,
                    worker_service_account=join.worker_account,
                    trainer=manager_build(
                        args.repo_root,
                        config.donkeycar.version,
                        trainer_build_args(config, gpu=True),
                    ),
                    bucket=self.storage.name,
                    labels=labels,
                ),
                opts=opts,
            ),
            lambda pool: {
                "manager_host_key": pool.manager_host_key,
                "manager_ready": pool.manager_ready,
            },
            join_store=join.store,
            built_by_manager=lambda pool: pool.trainer_built,
        )

    def outputs(self) -> GcpOutputs:
        config = self.config
        assert config.gcp is not None
        # Vertex AI jobs keep `image` and `training`; the swarm adds how to reach its nodes.
        swarm = None if self.nodes is None else self.nodes.outputs("gcp", self.storage.url)
        return GcpOutputs.build(
            project=config.gcp.project,
            region=config.gcp.region,
            bucket_url=self.storage.url,
            image=self.image.ref,
            image_repository=self.image.repository_url,
            trainer_service_account=self.identity.email,
            trainer_key=self.identity.key,
            training=vertex_training(config),
            swarm=swarm,
            swarm_image=None if swarm is None else swarm.image,
            zone=None if swarm is None else self.zone,
        )

    def stack_outputs(self) -> dict[str, Any]:
        return self.outputs().to_exports()


def vertex_training(config: StackConfig) -> VertexTraining:
    """What `trackday donkey submit` needs besides the resources: machine and donkeycar settings."""
    nodes = config.nodes
    assert nodes.gpu.type is not None, "infra.config resolves the GPU for cloud targets"
    return VertexTraining.build(
        machine_type=nodes.machine_type,
        accelerator_type=catalog.VERTEX_ACCELERATOR[nodes.gpu.type],
        accelerator_count=nodes.gpu.count,
        spot=nodes.spot,
        boot_disk_gb=nodes.root_volume_gb,
        max_run_hours=config.budget.ttl_hours,
        donkeycar_version=config.donkeycar.version,
        model_type=config.donkeycar.model_type,
        overrides=dict(config.donkeycar.overrides),
    )


def _resource_id(name: str, limit: int) -> str:
    """A Google resource id from a name: lowercase letters, digits and "-", within `limit`."""
    cleaned = re.sub(r"[^a-z0-9-]", "-", name.lower())[:limit].rstrip("-")
    return cleaned if cleaned[:1].isalpha() else f"t{cleaned}"[:limit]
