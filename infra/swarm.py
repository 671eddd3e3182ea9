"""Docker Swarm over a target's GPU nodes.

Each node's user data installs Docker and, on the manager, initialises the swarm and labels the
manager `trackday.role=trainer` (infra/bootstrap/). The nodes then form the swarm themselves
through the cloud's secret store (infra/bootstrap/join_store.py: gcp's Secret Manager, azure's
Key Vault, aws's Parameter Store), and this component only waits, through the cloud's API, for
the manager to say it is done (`manager_ready`), and reads its SSH host key from there: nothing
goes over SSH, so a deploy works from anywhere (a CI runner whose address is not in
`network.allowedCidrs`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pulumi

from contract.outputs import SwarmSite
from infra.nodes import Node, NodeAccess, PoolSpec


@dataclass(frozen=True)
class SwarmArgs:
    spec: PoolSpec
    access: NodeAccess
    nodes: list[Node]
    # The resource that exists once the manager published that its bootstrap is done (read
    # through the cloud's API), and the reader of its SSH host key through that API (given a
    # value that resolves then).
    manager_ready: pulumi.CustomResource
    manager_host_key: Callable[[pulumi.Output[str]], pulumi.Output[str]]


class Swarm(pulumi.ComponentResource):
    """One swarm of `nodes`: the first is the manager, the others join it as workers."""

    def __init__(self, name: str, args: SwarmArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("trackday:swarm:Swarm", name, None, opts)
        manager, *workers = args.nodes
        if manager.role != "manager" or any(w.role != "worker" for w in workers):
            raise ValueError("a swarm's first node is its manager, the others are workers")
        self.manager = manager
        self.manager_host_key = args.manager_host_key(args.manager_ready.id)
        self.manager_address = manager.public_address
        self.manager_private_address = manager.private_address
        self.register_outputs(
            {SwarmSite.key("manager_address"): self.manager_address, "workers": len(workers)}
        )
