"""What every swarm target (aws, azure, and gcp with `gcp.nodePool`) declares after its network.

`pool_and_swarm` is the sequence the three share: the nodes' SSH access (for the user's own
`trackday` commands; a deploy runs nothing over SSH), the cloud's node pool (the target makes it
from the pool spec and the access), the swarm the nodes form themselves and the DonkeyCar
trainer image their manager builds. `SwarmNodes.outputs` is the target's swarm
record (contract/outputs.py, SwarmOutputs) that `trackday donkey submit` and `trackday dr`
read: `bucketUrl` as this machine reaches the bucket (s3:// on aws, az:// on azure),
`nodeBucketUrl` and, where it is S3, `s3Endpoint` as containers on the nodes reach it
(through the S3 gateway on azure, gs:// with the node's service account on gcp), the manager's
addresses and host key, the SSH user and key (secret), `nodeCount`, `image` and `training`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pulumi

from contract.outputs import SwarmOutputs, SwarmTraining
from infra.bootstrap.spec import JoinStore
from infra.config import StackConfig
from infra.nodes import Cloud, Node, NodeAccess, PoolSpec
from infra.swarm import Swarm, SwarmArgs
from infra.targets import TRAINER_IMAGE, TargetArgs, child
from infra.workloads.donkeycar import BuiltByManager


class NodePool(Protocol):
    nodes: list[Node]


@dataclass(frozen=True)
class SwarmNodes:
    """What `pool_and_swarm` declared: the access, the swarm and the trainer image on it."""

    config: StackConfig
    access: NodeAccess
    swarm: Swarm
    image: BuiltByManager

    def outputs(
        self,
        target: str,
        bucket_url: pulumi.Input[str],
        s3_endpoint: pulumi.Input[str] | None = None,
        node_bucket_url: pulumi.Input[str] | None = None,
        **extra: Any,
    ) -> SwarmOutputs:
        """The swarm record; `extra` are the target's own outputs (region, storage account)."""
        return SwarmOutputs.build(
            target=target,
            bucket_url=bucket_url,
            node_bucket_url=node_bucket_url if node_bucket_url is not None else bucket_url,
            s3_endpoint=s3_endpoint,
            manager_address=self.swarm.manager_address,
            manager_private_address=self.swarm.manager_private_address,
            manager_host_key=self.swarm.manager_host_key,
            ssh_user=self.access.user,
            ssh_private_key=self.access.private_key,
            node_count=self.config.nodes.count,
            image=self.image.ref,
            training=swarm_training(self.config),
            **extra,
        )


def pool_and_swarm(
    name: str,
    parent: pulumi.Resource,
    args: TargetArgs,
    cloud: Cloud,
    make_pool: Callable[[PoolSpec, NodeAccess], NodePool],
    swarm_options: Callable[[Any], dict[str, Any]],
    built_by_manager: Callable[[Any], pulumi.Resource],
    join_store: JoinStore | None = None,
) -> SwarmNodes:
    """Node access, the cloud's pool (`make_pool`), the swarm over it and the trainer image.

    `swarm_options` gives the cloud's wait for the manager's "done" and its host key reader
    from its pool (SwarmArgs); `built_by_manager` the pool's resource that exists once the
    manager built the trainer. `join_store` is where the nodes form the swarm
    (infra/bootstrap/join_store.py) when known before the pool; azure's and aws's pools
    render theirs into the user data themselves, once their vault or parameter is known."""
    access = NodeAccess(f"{name}-access", opts=child(parent))
    spec = PoolSpec.from_config(args.config, cloud, join_store)
    pool = make_pool(spec, access)
    swarm = Swarm(
        f"{name}-swarm",
        SwarmArgs(spec, access, pool.nodes, **swarm_options(pool)),
        opts=child(parent),
    )
    tag = f"{TRAINER_IMAGE}:{args.config.donkeycar.version}"
    return SwarmNodes(args.config, access, swarm, BuiltByManager(tag, built_by_manager(pool)))


def swarm_training(config: StackConfig) -> SwarmTraining:
    """The donkeycar settings a Swarm training job runs with."""
    return SwarmTraining.build(
        gpus=config.nodes.gpu.count,
        max_run_hours=config.budget.ttl_hours,
        donkeycar_version=config.donkeycar.version,
        model_type=config.donkeycar.model_type,
        overrides=dict(config.donkeycar.overrides),
    )
