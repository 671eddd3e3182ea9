"""AWS's GPU nodes: EC2 instances (or persistent spot requests) on the Deep Learning Base GPU
AMI, each with its role's instance profile (the manager's may write the swarm parameters,
workers' read the join one: infra/targets/aws_parameters.py), IMDSv2 only. The nodes form the
swarm themselves through Parameter Store; `pulumi up` uploads the trainer's source archive and
waits, through Parameter Store, for the manager's "done" and its build
(infra/targets/aws_ready.py): nothing goes over SSH."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import nodes
from infra.bootstrap.join_store import READY_VALUE
from infra.bootstrap.spec import Role
from infra.bootstrap.trainer_build import TrainerBuild
from infra.config import ConfigError, StackConfig
from infra.nodes import Node, NodeAccess, PoolSpec
from infra.targets import child
from infra.targets.aws_parameters import SwarmParameters
from infra.targets.aws_ready import ParameterWait

# The Deep Learning Base GPU AMI (Ubuntu 24.04, x86_64, G4dn and newer): NVIDIA driver, CUDA,
# Docker and the NVIDIA container toolkit (DLAMI release notes,
# https://docs.aws.amazon.com/dlami/latest/devguide/aws-deep-learning-base-gpu-ami-ubuntu-24-04.html).
# Owned by Amazon; the newest matching image is used. Not the 22.04 image: its curl 7.81 leaves
# x-amz-security-token and X-Amz-Target out of the SigV4 signature, so the nodes' Parameter
# Store and S3 calls would be refused (infra/bootstrap/aws_store.py checks curl's version).
AMI_OWNER = "amazon"
AMI_NAME = "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 24.04) *"


@dataclass(frozen=True)
class NodePoolArgs:
    spec: PoolSpec
    access: NodeAccess
    config: StackConfig
    subnet_id: pulumi.Input[str]
    security_group_id: pulumi.Input[str]
    # Each role's instance profile, and the role policies a node waits for (its grants).
    profiles: dict[Role, pulumi.Input[str]]
    grants: list[pulumi.Resource]
    provider: aws.Provider
    region: str
    # Where the nodes form the swarm, and the trainer the manager builds from this archive,
    # uploaded to `bucket`.
    parameters: SwarmParameters
    trainer: tuple[TrainerBuild, pulumi.FileAsset]
    bucket: pulumi.Input[str]


class NodePool(pulumi.ComponentResource):
    """The EC2 GPU nodes on the Deep Learning Base GPU AMI: the manager first, then the workers."""

    def __init__(self, name: str, args: NodePoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("trackday:aws:NodePool", name, None, opts)
        ami = aws.ec2.get_ami_output(
            owners=[AMI_OWNER],
            most_recent=True,
            filters=[
                aws.ec2.GetAmiFilterArgs(name="name", values=[AMI_NAME]),
                aws.ec2.GetAmiFilterArgs(name="architecture", values=["x86_64"]),
            ],
            opts=pulumi.InvokeOutputOptions(parent=self, provider=args.provider),
        )
        node_config = args.config.nodes
        # EC2 refuses a root volume smaller than the image's snapshot: say so before asking.
        image_id = pulumi.Output.all(ami, node_config.root_volume_gb).apply(
            lambda values: checked_image(values[0], values[1])
        )
        self.nodes: list[Node] = []
        for role, suffix in args.spec.roles:
            common: dict[str, Any] = {
                "ami": image_id,
                "instance_type": node_config.machine_type,
                "subnet_id": args.subnet_id,
                "vpc_security_group_ids": [args.security_group_id],
                "iam_instance_profile": args.profiles[role],
                "user_data_base64": nodes.user_data(
                    args.spec,
                    role,
                    args.access,
                    encode=nodes.gzip_base64,
                    join_store=args.parameters.store,
                ),
                "user_data_replace_on_change": True,
                # The power-off timers stop the instance, they never terminate it.
                "instance_initiated_shutdown_behavior": "stop",
                "tags": {"Name": f"{name}-{suffix}", "trackday-role": role},
            }
            if node_config.spot:
                instance_id, public_ip, private_ip = self._spot(f"{name}-{suffix}", common, args)
            else:
                instance = aws.ec2.Instance(
                    f"{name}-{suffix}",
                    metadata_options=aws.ec2.InstanceMetadataOptionsArgs(**IMDS),
                    root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
                        **_root_volume(node_config.root_volume_gb)
                    ),
                    **common,
                    opts=child(self),
                )
                instance_id, public_ip = instance.id, instance.public_ip
                private_ip = instance.private_ip
            if role == "manager":
                # A stable address: an auto-assigned one changes at every stop and start.
                address = aws.ec2.Eip(
                    f"{name}-{suffix}-address",
                    domain="vpc",
                    instance=instance_id,
                    tags={"Name": f"{name}-{suffix}"},
                    opts=child(self),
                )
                public_ip = address.public_ip
                self._manager_waits(f"{name}-{suffix}", args, instance_id)
            self.nodes.append(Node(role, suffix, public_ip, private_ip, instance_id))
        self.register_outputs({"count": len(self.nodes)})

    def _spot(self, name: str, common: dict[str, Any], args: NodePoolArgs):
        """A persistent spot request that stops (not terminates) its instance on interruption.

        Declared as a spot request, not as an instance with spot market options: deleting
        such an instance leaves its persistent request open, and EC2 launches a new GPU
        instance for it outside the stack (hashicorp/terraform-provider-aws issue 38142).
        Deleting a spot request cancels it, then terminates its instance.
        """
        max_price = args.config.nodes.spot_max_price
        request = aws.ec2.SpotInstanceRequest(
            name,
            spot_type="persistent",
            instance_interruption_behavior="stop",
            spot_price=None if max_price is None else f"{max_price:g}",
            # Its instance's id and addresses are known once the request is fulfilled.
            wait_for_fulfillment=True,
            metadata_options=aws.ec2.SpotInstanceRequestMetadataOptionsArgs(**IMDS),
            root_block_device=aws.ec2.SpotInstanceRequestRootBlockDeviceArgs(
                **_root_volume(args.config.nodes.root_volume_gb)
            ),
            **common,
            opts=child(self),
        )
        return request.spot_instance_id, request.public_ip, request.private_ip

    def _manager_waits(
        self, name: str, args: NodePoolArgs, instance_id: pulumi.Output[str]
    ) -> None:
        """The manager's "done" (with its host key), then the trainer archive uploaded under
        its digest and the manager's word that it built that digest."""
        build, source = args.trainer
        parameters = args.parameters
        self.manager_ready = ParameterWait(
            f"{name}-ready",
            {
                "region": args.region,
                "parameter": parameters.ready.name,
                "instanceId": instance_id,
                "expect": {"bootstrap": READY_VALUE},
            },
            opts=child(self, depends_on=args.grants),
        )
        uploaded = aws.s3.BucketObjectv2(
            f"{name}-trainer-source",
            bucket=args.bucket,
            key=build.object_name,
            source=source,
            content_type="application/gzip",
            opts=child(self),
        )
        self.trainer_built = ParameterWait(
            f"{name}-trainer-built",
            {
                "region": args.region,
                "parameter": parameters.built.name,
                "instanceId": instance_id,
                "expect": {"digest": build.digest},
            },
            opts=child(self, depends_on=[uploaded, parameters.request, self.manager_ready]),
        )


def checked_image(ami: Any, root_volume_gb: int) -> str:
    """The looked-up AMI's id, if `nodes.rootVolumeGb` holds its root snapshot."""
    root = next(
        (m for m in ami.block_device_mappings or [] if m.device_name == ami.root_device_name),
        None,
    )
    size = int((root.ebs if root else {}).get("volume_size") or 0)
    if root_volume_gb < size:
        raise ConfigError(
            "nodes.rootVolumeGb",
            root_volume_gb,
            f"the node image {ami.name} ({ami.id}) has a {size} GB root snapshot; "
            f"ask for at least {size}",
        )
    return ami.id


# Containers on a node (bridge networking is one hop more) reach the instance metadata
# service, with session tokens only (IMDSv2).
IMDS = {"http_endpoint": "enabled", "http_tokens": "required", "http_put_response_hop_limit": 2}


def _root_volume(size_gb: int) -> dict[str, Any]:
    return {
        "volume_size": size_gb,
        "volume_type": "gp3",
        "encrypted": True,
        "delete_on_termination": True,
    }
