"""The `gcp` target's node pool (`gcp.nodePool`): a network of its own and Compute Engine GPU
VMs, the manager with a static address and its SSH host key read from its guest attributes.

The firewall opens SSH only to `network.allowedCidrs` and Swarm's ports only between the
nodes; the VPC's MTU fits Docker's VXLAN overlay (infra/cloud_rules.py). GPU VMs cannot
live-migrate: they stop for host maintenance; spot ones stop when reclaimed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_gcp as gcp

from infra import catalog, cloud_rules, nodes
from infra.config import StackConfig
from infra.nodes import Node, NodeAccess, PoolSpec
from infra.targets import child
from infra.targets.ingress import ingress_rules

NODE_TAG = "trackday-node"


@dataclass(frozen=True)
class NetworkArgs:
    region: str
    allowed_cidrs: list[str]


class Network(pulumi.ComponentResource):
    """The nodes' network: admin ports from the allowed ranges, swarm ports between nodes only."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("trackday:gcp:Network", name, None, opts)
        # 1500, not GCP's default 1460: Docker's VXLAN overlay sends 1450-byte container
        # packets plus 50 bytes of headers (infra/cloud_rules.py).
        network = gcp.compute.Network(
            f"{name}-vpc",
            auto_create_subnetworks=False,
            mtu=cloud_rules.GCP_NODE_MTU,
            opts=child(self),
        )
        self.subnet = gcp.compute.Subnetwork(
            f"{name}-subnet",
            network=network.id,
            region=args.region,
            ip_cidr_range=nodes.SUBNET_CIDR,
            private_ip_google_access=True,
            opts=child(self),
        )
        gcp.compute.Firewall(
            f"{name}-admin",
            network=network.id,
            direction="INGRESS",
            allows=[
                gcp.compute.FirewallAllowArgs(protocol=protocol, ports=ports)
                for protocol, ports in _by_protocol(from_admins=True).items()
            ],
            source_ranges=list(args.allowed_cidrs),
            target_tags=[NODE_TAG],
            opts=child(self),
        )
        gcp.compute.Firewall(
            f"{name}-swarm",
            network=network.id,
            direction="INGRESS",
            allows=[
                gcp.compute.FirewallAllowArgs(protocol=protocol, ports=ports)
                for protocol, ports in _by_protocol(from_admins=False).items()
            ],
            source_tags=[NODE_TAG],
            target_tags=[NODE_TAG],
            opts=child(self),
        )
        self.register_outputs({"subnet": self.subnet.id})


@dataclass(frozen=True)
class NodePoolArgs:
    spec: PoolSpec
    access: NodeAccess
    config: StackConfig
    zone: str
    subnet: pulumi.Input[str]
    service_account: pulumi.Input[str]
    labels: dict[str, str] = field(default_factory=dict)


class NodePool(pulumi.ComponentResource):
    """Compute Engine GPU VMs, running as the trainer service account: manager, then workers."""

    def __init__(self, name: str, args: NodePoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("trackday:gcp:NodePool", name, None, opts)
        node_config = args.config.nodes
        gcp_config = args.config.gcp
        assert gcp_config is not None and node_config.gpu.type is not None
        machine = str(node_config.machine_type)
        # n1 machines take attached GPUs; g2 and a2 machines come with theirs.
        accelerators = (
            [
                gcp.compute.InstanceGuestAcceleratorArgs(
                    type=catalog.COMPUTE_ACCELERATOR[node_config.gpu.type],
                    count=node_config.gpu.count or 1,
                )
            ]
            if machine.startswith("n1-")
            else None
        )
        self.nodes: list[Node] = []
        for role, suffix in args.spec.roles:
            # The manager keeps one address across stops and starts (an ephemeral one changes);
            # workers are reached through it and by their private addresses.
            nat_ip = (
                gcp.compute.Address(
                    f"{name}-{suffix}-address",
                    region=args.zone.rsplit("-", 1)[0],
                    address_type="EXTERNAL",
                    labels=args.labels,
                    opts=child(self),
                ).address
                if role == "manager"
                else None
            )
            instance = gcp.compute.Instance(
                f"{name}-{suffix}",
                machine_type=machine,
                zone=args.zone,
                boot_disk=gcp.compute.InstanceBootDiskArgs(
                    initialize_params=gcp.compute.InstanceBootDiskInitializeParamsArgs(
                        image=gcp_config.node_image,
                        size=node_config.root_volume_gb,
                        type="pd-ssd",
                    ),
                ),
                guest_accelerators=accelerators,
                scheduling=_scheduling(node_config.spot),
                network_interfaces=[
                    gcp.compute.InstanceNetworkInterfaceArgs(
                        subnetwork=args.subnet,
                        # A public address (the manager's static): SSH from the allowed ranges.
                        access_configs=[
                            gcp.compute.InstanceNetworkInterfaceAccessConfigArgs(nat_ip=nat_ip)
                        ],
                    )
                ],
                service_account=gcp.compute.InstanceServiceAccountArgs(
                    email=args.service_account, scopes=["cloud-platform"]
                ),
                metadata={
                    "user-data": nodes.user_data(args.spec, role, args.access),
                    # The Deep Learning VM image installs the NVIDIA driver at first boot.
                    "install-nvidia-driver": "True",
                    # The pool's SSH key comes with the user data, not from OS Login.
                    "enable-oslogin": "FALSE",
                    # The guest publishes its SSH host keys there at first boot (hostkeys/),
                    # where the stack reads the manager's through the Compute API.
                    "enable-guest-attributes": "TRUE",
                    "block-project-ssh-keys": "TRUE",
                },
                tags=[NODE_TAG],
                labels={**args.labels, "trackday-role": role},
                allow_stopping_for_update=True,
                opts=child(self),
            )
            if role == "manager":
                self.manager_host_key = _guest_host_key(instance, args.zone, self)
            interface = instance.network_interfaces[0]
            self.nodes.append(
                Node(
                    role,
                    suffix,
                    interface.access_configs.apply(lambda configs: configs[0].nat_ip),
                    interface.network_ip,
                    instance.instance_id,
                )
            )
        self.register_outputs({"count": len(self.nodes)})


HOST_KEY_TYPE = "ssh-ed25519"


def _by_protocol(from_admins: bool) -> dict[str, list[str]]:
    """The ports of infra/targets/ingress.py's rules, from the admins or between the nodes,
    by protocol (a firewall's `allows`)."""
    ports: dict[str, list[str]] = {}
    for rule in ingress_rules():
        if rule.from_admins == from_admins:
            ports.setdefault(rule.protocol, []).append(str(rule.port))
    return ports


def _guest_host_key(
    instance: gcp.compute.Instance, zone: str, parent: pulumi.Resource
) -> Callable[[pulumi.Output[str]], pulumi.Output[str]]:
    """Reads a VM's SSH host key from its guest attributes (`hostkeys/<type>`: the key's
    base64, written by the guest at first boot), once `ready` resolves."""

    def read(ready: pulumi.Output[str]) -> pulumi.Output[str]:
        attributes = gcp.compute.get_instance_guest_attributes_output(
            name=pulumi.Output.all(instance.name, ready).apply(lambda values: values[0]),
            zone=zone,
            query_path="hostkeys/",
            opts=pulumi.InvokeOutputOptions(parent=parent),
        )
        return attributes.query_values.apply(host_key_line)

    return read


def host_key_line(values: list[Any]) -> str:
    """`ssh-ed25519 AAAA...` from the `hostkeys/` guest attributes, or a clear error."""
    for value in values or []:
        key = value["key"] if isinstance(value, dict) else value.key
        if key == HOST_KEY_TYPE:
            blob = value["value"] if isinstance(value, dict) else value.value
            return f"{HOST_KEY_TYPE} {blob.strip()}"
    raise ValueError(
        f"the manager published no {HOST_KEY_TYPE} host key in its guest attributes "
        "(hostkeys/): check that its image runs the Google guest agent or cloud-init, and "
        "that metadata enable-guest-attributes is TRUE, then run `pulumi up` again"
    )


def _scheduling(spot: bool) -> gcp.compute.InstanceSchedulingArgs:
    """GPU VMs cannot live-migrate: they stop for host maintenance; spot ones when reclaimed."""
    if spot:
        return gcp.compute.InstanceSchedulingArgs(
            provisioning_model="SPOT",
            preemptible=True,
            automatic_restart=False,
            on_host_maintenance="TERMINATE",
            instance_termination_action="STOP",
        )
    return gcp.compute.InstanceSchedulingArgs(
        provisioning_model="STANDARD", automatic_restart=True, on_host_maintenance="TERMINATE"
    )
