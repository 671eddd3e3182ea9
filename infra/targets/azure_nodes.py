"""Azure's GPU nodes: N-series VMs from Ubuntu 22.04 with the NVIDIA GPU driver extension,
spot or regular, each with its own identity that may only read and deallocate its own VM,
and use the stack's vault as its role allows (infra/targets/azure_vault.py: the manager
writes, workers read the join secret). `pulumi up` waits, through the vault, for the
manager's "done" (infra/targets/azure_ready.py): nothing goes over SSH."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_azure_native as azure

from infra import cloud_rules, nodes
from infra.bootstrap import NodeService, trainer_build
from infra.bootstrap.join_store import READY_VALUE
from infra.bootstrap.trainer_build import TrainerBuild
from infra.config import StackConfig
from infra.nodes import Node, NodeAccess, PoolSpec
from infra.targets import child
from infra.targets.azure_ready import VaultWait
from infra.targets.azure_upload import BlobUpload
from infra.targets.azure_vault import JoinVault

IMAGE = {
    "publisher": "Canonical",
    "offer": "0001-com-ubuntu-server-jammy",
    "sku": "22_04-lts-gen2",
    "version": "latest",
}
GPU_DRIVER = {"publisher": "Microsoft.HpcCompute", "type": "NvidiaGpuDriverLinux", "version": "1.6"}


@dataclass(frozen=True)
class NodePoolArgs:
    spec: PoolSpec
    access: NodeAccess
    config: StackConfig
    resource_group: pulumi.Input[str]
    location: str
    subnet_id: pulumi.Input[str]
    # The manager's data identity (the S3 gateway reaches Blob storage with it).
    identity: azure.managedidentity.UserAssignedIdentity
    # The custom role each node's own identity holds on its own VM.
    self_deallocate_role: pulumi.Input[str]
    # The manager's extra services (the S3 gateway), known once the account and identity are.
    manager_services: pulumi.Output[tuple[NodeService, ...]]
    # Where the nodes form the swarm (the join token, the manager's "done").
    vault: JoinVault
    # The trainer image the manager builds from this archive (uploaded to `container` of
    # `storage_account`, read with the data identity).
    trainer: tuple[TrainerBuild, pulumi.FileAsset]
    storage_account: pulumi.Input[str]
    container: str


class NodePool(pulumi.ComponentResource):
    """N-series VMs with the NVIDIA driver extension: the manager first, then the workers."""

    def __init__(self, name: str, args: NodePoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("trackday:azure:NodePool", name, None, opts)
        node_config = args.config.nodes
        self.nodes: list[Node] = []
        for role, suffix in args.spec.roles:
            # Its own identity: it deallocates this VM at power-off, and nothing else.
            own = azure.managedidentity.UserAssignedIdentity(
                f"{name}-{suffix}-identity",
                resource_group_name=args.resource_group,
                location=args.location,
                opts=child(self),
            )
            identities = [own.id] + ([args.identity.id] if role == "manager" else [])
            public_ip = azure.network.PublicIPAddress(
                f"{name}-{suffix}-ip",
                resource_group_name=args.resource_group,
                location=args.location,
                sku={"name": "Standard"},
                public_ip_allocation_method="Static",
                opts=child(self),
            )
            nic = azure.network.NetworkInterface(
                f"{name}-{suffix}-nic",
                resource_group_name=args.resource_group,
                location=args.location,
                ip_configurations=[
                    {
                        "name": "primary",
                        "subnet": {"id": args.subnet_id},
                        "public_ip_address": {"id": public_ip.id},
                        "private_ip_allocation_method": "Dynamic",
                    }
                ],
                opts=child(self),
            )
            vm = azure.compute.VirtualMachine(
                f"{name}-{suffix}",
                resource_group_name=args.resource_group,
                location=args.location,
                hardware_profile={"vm_size": node_config.machine_type},
                storage_profile={
                    "image_reference": IMAGE,
                    "os_disk": {
                        "create_option": "FromImage",
                        "disk_size_gb": node_config.root_volume_gb,
                        "managed_disk": {"storage_account_type": "StandardSSD_LRS"},
                        "delete_option": "Delete",
                    },
                },
                os_profile={
                    "computer_name": suffix,
                    "admin_username": args.access.user,
                    "custom_data": nodes.user_data(
                        args.spec,
                        role,
                        args.access,
                        own.client_id,
                        args.manager_services,
                        _base64,
                        args.vault.store,
                    ),
                    "linux_configuration": {
                        "disable_password_authentication": True,
                        "ssh": {
                            "public_keys": [
                                {
                                    "path": f"/home/{args.access.user}/.ssh/authorized_keys",
                                    "key_data": args.access.public_key,
                                }
                            ]
                        },
                    },
                },
                network_profile={
                    "network_interfaces": [
                        {"id": nic.id, "primary": True, "delete_option": "Delete"}
                    ]
                },
                identity={"type": "UserAssigned", "user_assigned_identities": identities},
                # The manager's build request (infra/bootstrap/trainer_build.py), read through
                # IMDS and changed in place when training/ changes.
                **({"user_data": _build_request(args)} if role == "manager" else {}),
                **_priority(args.config),
                opts=child(self),
            )
            # The driver only (containers bring their own CUDA): no CUDA toolkit holding the
            # dpkg lock for minutes. It may reboot the VM: the bootstrap retries until done.
            driver = azure.compute.VirtualMachineExtension(
                f"{name}-{suffix}-gpu-driver",
                resource_group_name=args.resource_group,
                location=args.location,
                vm_name=vm.name,
                publisher=GPU_DRIVER["publisher"],
                type=GPU_DRIVER["type"],
                type_handler_version=GPU_DRIVER["version"],
                auto_upgrade_minor_version=True,
                settings={"installCUDA": False},
                opts=child(self),
            )
            # The node deallocates itself at power-off (a VM only stopped still bills).
            azure.authorization.RoleAssignment(
                f"{name}-{suffix}-deallocate",
                principal_id=own.principal_id,
                principal_type=cloud_rules.MANAGED_IDENTITY_PRINCIPAL_TYPE,
                role_definition_id=args.self_deallocate_role,
                scope=vm.id,
                opts=child(self),
            )
            granted = args.vault.grant_node(
                f"{name}-{suffix}-vault",
                role,
                own.principal_id,
                cloud_rules.MANAGED_IDENTITY_PRINCIPAL_TYPE,
            )
            if role == "manager":
                # The manager says it is done (swarm, token written, host key) last.
                self.manager_ready = VaultWait(
                    f"{name}-{suffix}-ready",
                    {
                        "secret": args.vault.store.apply(lambda store: store.ready_secret),
                        "instanceId": vm.vm_id,
                        "expect": {"bootstrap": READY_VALUE},
                    },
                    opts=child(self, depends_on=[granted, driver]),
                )
                self.trainer_built = self._trainer_built(f"{name}-trainer", args, vm)
            private_ip = nic.ip_configurations.apply(lambda configs: configs[0].private_ip_address)
            self.nodes.append(Node(role, suffix, public_ip.ip_address, private_ip, vm.vm_id))
        self.register_outputs({"count": len(self.nodes)})

    def _trainer_built(
        self, name: str, args: NodePoolArgs, vm: azure.compute.VirtualMachine
    ) -> VaultWait:
        """The build context uploaded under its digest, and the wait until the manager says
        it built that digest."""
        build, source = args.trainer
        uploaded = BlobUpload(
            f"{name}-source",
            {
                "account": args.storage_account,
                "container": args.container,
                "name": build.object_name,
                "path": source.path,
                "digest": build.digest,
            },
            opts=child(self),
        )
        return VaultWait(
            f"{name}-built",
            {
                "secret": args.vault.store.apply(
                    lambda store: f"{store.secret.rsplit('/', 1)[0]}/{trainer_build.BUILT_SECRET}"
                ),
                "instanceId": vm.vm_id,
                "expect": {"digest": build.digest},
            },
            opts=child(self, depends_on=[uploaded, self.manager_ready]),
        )


def _build_request(args: NodePoolArgs) -> pulumi.Output[str]:
    """The manager's build request, base64 (the VM's `userData`): the archive's blob and the
    data identity that may read it."""
    build = args.trainer[0]
    return pulumi.Output.all(args.storage_account, args.identity.client_id).apply(
        lambda values: _base64(build.request(f"{values[0]}/{args.container}", values[1]))
    )


def _base64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _priority(config: StackConfig) -> dict[str, Any]:
    """Spot VMs are deallocated on eviction, at most `nodes.spotMaxPrice`."""
    if not config.nodes.spot:
        return {"priority": "Regular"}
    max_price = config.nodes.spot_max_price
    return {
        "priority": "Spot",
        "eviction_policy": "Deallocate",
        "billing_profile": {"max_price": -1 if max_price is None else max_price},
    }
