"""Azure's GPU nodes: N-series VMs from Ubuntu 22.04 with the NVIDIA GPU driver extension,
spot or regular, each with its own identity that may only read and deallocate its own VM."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_azure_native as azure

from infra import cloud_rules, nodes
from infra.bootstrap import NodeService
from infra.config import StackConfig
from infra.nodes import Node, NodeAccess, PoolSpec
from infra.targets import child

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
                **_priority(args.config),
                opts=child(self),
            )
            # The driver only (containers bring their own CUDA): no CUDA toolkit holding the
            # dpkg lock for minutes. It may reboot the VM: the swarm's commands wait for it.
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
            private_ip = nic.ip_configurations.apply(lambda configs: configs[0].private_ip_address)
            self.nodes.append(
                Node(role, suffix, public_ip.ip_address, private_ip, vm.vm_id, ready=(driver,))
            )
        self.register_outputs({"count": len(self.nodes)})


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
