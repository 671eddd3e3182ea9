"""Docker Swarm over a target's GPU nodes.

Each node's user data installs Docker and, on the manager, initialises the swarm and labels the
manager `trackday.role=trainer` (infra/bootstrap/). Where the pool has a join store (gcp,
azure), the nodes form the swarm themselves through the cloud's secret store
(infra/bootstrap/join_store.py) and this component only waits, through the cloud's API, for the
manager to say it is done (`manager_ready`): nothing goes over SSH, so a deploy works from
anywhere (a CI runner).

Elsewhere (aws, until it has its store) it does what needs more than one node, with
pulumi-command over SSH (the pool's generated key, a secret): it reads the worker join token on
the manager (a secret output, never logged), joins each worker by handing the token to it on
standard input, and labels each joined worker `trackday.role=simulation` from the manager. A
replaced worker joins again (the commands are triggered by its VM id).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pulumi
import pulumi_command as command

from contract.outputs import SwarmSite
from infra import bootstrap
from infra.nodes import Node, NodeAccess, PoolSpec
from infra.targets import child

MANAGER_HOST_KEY = "/etc/ssh/ssh_host_ed25519_key.pub"
# A new VM takes minutes before SSH answers; keep dialling (15 s per try) for about 20 minutes.
DIAL_ERROR_LIMIT = 80


@dataclass(frozen=True)
class SwarmArgs:
    spec: PoolSpec
    access: NodeAccess
    nodes: list[Node]
    # With a join store (gcp, azure): the resource that exists once the manager published that its
    # bootstrap is done (read through the cloud's API), and the reader of its SSH host key
    # through that API (given a value that resolves then); the swarm then runs no command.
    # None: everything over SSH.
    manager_ready: pulumi.CustomResource | None = None
    manager_host_key: Callable[[pulumi.Output[str]], pulumi.Output[str]] | None = None


def connection(access: NodeAccess, node: Node) -> command.remote.ConnectionArgs:
    """SSH to a node's public address as the pool's user, with its generated key."""
    return command.remote.ConnectionArgs(
        host=node.public_address,
        user=access.user,
        private_key=access.private_key,
        dial_error_limit=DIAL_ERROR_LIMIT,
    )


def _join_over_ssh(
    parent: pulumi.Resource, name: str, args: SwarmArgs
) -> tuple[list[pulumi.Resource], pulumi.Output[str]]:
    """The join token read on the manager and handed to each worker, over SSH: the swarm's
    `ready` resources and the manager's host key."""
    manager, *workers = args.nodes
    on_manager = connection(args.access, manager)
    token = command.remote.Command(
        f"{name}-join-token",
        connection=on_manager,
        create=bootstrap.remote_command(bootstrap.join_token_script()),
        # The token is stdout: never in Pulumi's logs, only in state as a secret.
        logging=command.remote.Logging.STDERR,
        triggers=[manager.instance_id],
        opts=child(parent, additional_secret_outputs=["stdout"]),
    )
    join_token = pulumi.Output.secret(token.stdout.apply(str.strip))
    # The manager's SSH host key: `trackday` then refuses any other host at its address.
    # Read on first contact, over an SSH connection that itself checks no host key
    # (docs/configuration.md says what that trusts; gcp reads it through the Compute API).
    read = command.remote.Command(
        f"{name}-manager-host-key",
        connection=on_manager,
        create=f"cat {MANAGER_HOST_KEY}",
        triggers=[manager.instance_id],
        opts=child(parent, depends_on=[token]),
    )
    host_key = read.stdout.apply(str.strip)
    ready: list[pulumi.Resource] = [token]
    for worker in workers:
        joined = command.remote.Command(
            f"{name}-{worker.name}-join",
            connection=connection(args.access, worker),
            create=manager.private_address.apply(
                lambda address: bootstrap.remote_command(bootstrap.join_script(address))
            ),
            stdin=join_token,
            triggers=[worker.instance_id, manager.instance_id],
            opts=child(parent),
        )
        labelled = command.remote.Command(
            f"{name}-{worker.name}-labels",
            connection=on_manager,
            create=pulumi.Output.all(joined.stdout, args.access.public_key).apply(
                lambda values: bootstrap.remote_command(
                    bootstrap.label_script(values[0], args.spec.bootstrap("worker", values[1]))
                )
            ),
            triggers=[joined.stdout],
            opts=child(parent),
        )
        ready.append(labelled)
    return ready, host_key


class Swarm(pulumi.ComponentResource):
    """One swarm of `nodes`: the first is the manager, the others join it as workers."""

    def __init__(self, name: str, args: SwarmArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("trackday:swarm:Swarm", name, None, opts)
        manager, *workers = args.nodes
        if manager.role != "manager" or any(w.role != "worker" for w in workers):
            raise ValueError("a swarm's first node is its manager, the others are workers")
        self.manager = manager
        self.ready: list[pulumi.Resource]
        if args.manager_ready is not None:
            if args.manager_host_key is None:
                raise ValueError("a swarm formed by its nodes reads the host key from the cloud")
            self.manager_host_key = args.manager_host_key(args.manager_ready.id)
            self.ready = [args.manager_ready]
        else:
            self.ready, self.manager_host_key = _join_over_ssh(self, name, args)
        self.manager_address = manager.public_address
        self.manager_private_address = manager.private_address
        self.register_outputs(
            {SwarmSite.key("manager_address"): self.manager_address, "workers": len(workers)}
        )
