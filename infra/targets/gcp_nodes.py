"""The `gcp` target's node pool (`gcp.nodePool`): a network of its own and Compute Engine GPU
VMs, the manager with a static address and its SSH host key read from its guest attributes.

The nodes form the swarm themselves (infra/bootstrap/join_store.py) through the stack's
Secret Manager secret (`SwarmJoinSecret`): the manager, which runs as the trainer service
account, may only add versions to it; the workers run as a service account of their own that
may only read it. `pulumi up` waits for the manager's "done" through the Compute API.

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
from infra.bootstrap import trainer_build
from infra.bootstrap.join_store import READY_ATTRIBUTE, READY_VALUE
from infra.bootstrap.spec import JoinStore
from infra.bootstrap.trainer_build import TrainerBuild
from infra.config import StackConfig
from infra.nodes import Node, NodeAccess, PoolSpec
from infra.targets import child
from infra.targets.gcp_ready import GuestAttributeWait
from infra.targets.ingress import ingress_rules

NODE_TAG = "trackday-node"
# Secret Manager's predefined roles: add versions only (no read), read versions only.
SECRET_WRITER_ROLE = "roles/secretmanager.secretVersionAdder"
SECRET_READER_ROLE = "roles/secretmanager.secretAccessor"
WORKER_BUCKET_ROLE = "roles/storage.objectUser"


@dataclass(frozen=True)
class SwarmJoinSecretArgs:
    project: str
    secret_id: str
    # The manager's service account (the trainer's), and whether there are workers.
    manager_account: pulumi.Input[str]
    workers: bool
    worker_account_id: str
    bucket: pulumi.Input[str]
    labels: dict[str, str] = field(default_factory=dict)


class SwarmJoinSecret(pulumi.ComponentResource):
    """The secret the manager leaves the join token in; the workers' own service account."""

    def __init__(
        self, name: str, args: SwarmJoinSecretArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("trackday:gcp:SwarmJoinSecret", name, None, opts)
        self.store = JoinStore("gcp", f"projects/{args.project}/secrets/{args.secret_id}")
        secret = gcp.secretmanager.Secret(
            f"{name}-secret",
            project=args.project,
            secret_id=args.secret_id,
            replication=gcp.secretmanager.SecretReplicationArgs(
                auto=gcp.secretmanager.SecretReplicationAutoArgs()
            ),
            labels=args.labels,
            opts=child(self),
        )
        gcp.secretmanager.SecretIamMember(
            f"{name}-writer",
            secret_id=secret.id,
            role=SECRET_WRITER_ROLE,
            member=pulumi.Output.concat("serviceAccount:", args.manager_account),
            opts=child(self),
        )
        self.worker_account: pulumi.Output[str] | None = None
        if args.workers:
            account = gcp.serviceaccount.Account(
                f"{name}-worker",
                account_id=args.worker_account_id,
                display_name="trackday swarm workers (DeepRacer simulations)",
                opts=child(self),
            )
            member = pulumi.Output.concat("serviceAccount:", account.email)
            gcp.secretmanager.SecretIamMember(
                f"{name}-reader",
                secret_id=secret.id,
                role=SECRET_READER_ROLE,
                member=member,
                opts=child(self),
            )
            gcp.storage.BucketIAMMember(
                f"{name}-worker-bucket-objects",
                bucket=args.bucket,
                role=WORKER_BUCKET_ROLE,
                member=member,
                opts=child(self),
            )
            self.worker_account = account.email
        self.register_outputs({"secret": secret.id})


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
    # The workers' service account (SwarmJoinSecret); None with a manager only.
    worker_service_account: pulumi.Input[str] | None = None
    # The trainer image the manager builds from this archive (uploaded to the bucket).
    trainer: tuple[TrainerBuild, pulumi.Asset] | None = None
    bucket: pulumi.Input[str] | None = None
    labels: dict[str, str] = field(default_factory=dict)


class NodePool(pulumi.ComponentResource):
    """Compute Engine GPU VMs: the manager (as the trainer service account), then the workers
    (as theirs)."""

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
                    email=(
                        args.service_account if role == "manager" else args.worker_service_account
                    ),
                    scopes=["cloud-platform"],
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
                    # The manager's build request (infra/bootstrap/trainer_build.py): changed
                    # in place when training/ changes, read by the manager's build timer.
                    **(
                        {
                            trainer_build.REQUEST_KEY: pulumi.Output.from_input(args.bucket).apply(
                                args.trainer[0].request
                            )
                        }
                        if args.trainer is not None and role == "manager"
                        else {}
                    ),
                },
                tags=[NODE_TAG],
                labels={**args.labels, "trackday-role": role},
                allow_stopping_for_update=True,
                opts=child(self),
            )
            if role == "manager":
                self.manager_host_key = _guest_host_key(instance, args.zone, self)
                # The manager's bootstrap says it is done (swarm, token written) last.
                self.manager_ready = GuestAttributeWait(
                    f"{name}-{suffix}-ready",
                    {
                        "project": instance.project,
                        "zone": args.zone,
                        "instance": instance.name,
                        "instanceId": instance.instance_id,
                        "key": READY_ATTRIBUTE,
                        "value": READY_VALUE,
                    },
                    opts=child(self),
                )
                if args.trainer is not None:
                    self.trainer_built = _trainer_built(f"{name}-trainer", args, instance, self)
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


def _trainer_built(
    name: str, args: NodePoolArgs, instance: gcp.compute.Instance, parent: pulumi.Resource
) -> GuestAttributeWait:
    """The build context uploaded under its digest, and the wait until the manager says it
    built that digest (it reads the object with its own identity)."""
    assert args.trainer is not None and args.bucket is not None
    build, source = args.trainer
    uploaded = gcp.storage.BucketObject(
        f"{name}-source",
        bucket=args.bucket,
        name=build.object_name,
        source=source,
        opts=child(parent),
    )
    return GuestAttributeWait(
        f"{name}-built",
        {
            "project": instance.project,
            "zone": args.zone,
            "instance": instance.name,
            "instanceId": instance.instance_id,
            "key": trainer_build.BUILT_ATTRIBUTE,
            "value": build.digest,
        },
        opts=child(parent, depends_on=[uploaded]),
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
