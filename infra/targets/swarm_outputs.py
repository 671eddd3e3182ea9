"""What every swarm target (aws, azure, and gcp with `gcp.nodePool`) adds after its nodes.

The DonkeyCar trainer image, built on the manager, and the stack outputs that
`trackday donkey submit --stack aws|azure` reads (trackday/stack.py, SwarmOutputs):

`target`, `bucketUrl` (the bucket as this machine reaches it: s3:// on aws, az:// on azure),
`nodeBucketUrl` and, where it is S3, `s3Endpoint` (the bucket as containers on the nodes reach
it: through the S3 gateway on azure, gs:// with the node's service account on gcp),
`managerAddress` (public), `managerPrivateAddress`, `managerHostKey` (its SSH host key),
`sshUser`, `sshPrivateKey` (secret),
`nodeCount`, `image` (the trainer image on the manager) and `training` (donkeycar settings).
"""

from __future__ import annotations

from typing import Any

import pulumi

from infra.config import StackConfig
from infra.nodes import NodeAccess
from infra.swarm import Swarm
from infra.targets import TargetArgs, child, trainer_build_args
from infra.workloads.donkeycar import TrainerImage, TrainerImageArgs


class SwarmStack:
    """The trainer image on `swarm`'s manager, and the outputs of a swarm target."""

    def __init__(
        self,
        name: str,
        parent: pulumi.Resource,
        args: TargetArgs,
        access: NodeAccess,
        swarm: Swarm,
        bucket_url: pulumi.Input[str],
        s3_endpoint: pulumi.Input[str] | None,
        node_bucket_url: pulumi.Input[str] | None = None,
    ):
        config = args.config
        self.config = config
        self.access = access
        self.swarm = swarm
        self.bucket_url = bucket_url
        self.node_bucket_url = node_bucket_url if node_bucket_url is not None else bucket_url
        self.s3_endpoint = s3_endpoint
        self.image = TrainerImage(
            f"{name}-trainer",
            TrainerImageArgs(
                repo_root=args.repo_root,
                version=config.donkeycar.version,
                build_args=trainer_build_args(config, gpu=True),
                access=access,
                swarm=swarm,
            ),
            opts=child(parent),
        )

    def outputs(self, target: str) -> dict[str, Any]:
        outputs = {
            "target": target,
            "bucketUrl": self.bucket_url,
            "nodeBucketUrl": self.node_bucket_url,
            "managerAddress": self.swarm.manager_address,
            "managerPrivateAddress": self.swarm.manager_private_address,
            "managerHostKey": self.swarm.manager_host_key,
            "sshUser": self.access.user,
            "sshPrivateKey": self.access.private_key,
            "nodeCount": self.config.nodes.count,
            "image": self.image.ref,
            "training": training_settings(self.config),
        }
        if self.s3_endpoint is not None:
            outputs["s3Endpoint"] = self.s3_endpoint
        return outputs


def training_settings(config: StackConfig) -> dict[str, Any]:
    """The donkeycar settings a Swarm training job runs with."""
    return {
        "gpus": config.nodes.gpu.count,
        "maxRunHours": config.budget.ttl_hours,
        "donkeycarVersion": config.donkeycar.version,
        "modelType": config.donkeycar.model_type,
        "overrides": dict(config.donkeycar.overrides),
    }
