"""Target `aws`: an S3 bucket, an instance role, a private network and a swarm of EC2 GPU nodes.

The bucket blocks all public access, encrypts at rest, keeps versions (old ones for
`storage.keepDeletedDays`, incomplete uploads a week), refuses requests not made over TLS,
and outlives `pulumi destroy` (retained, not protected: the destroy runs through) unless
the stack opts out, in which case it goes with its data. The nodes
reach it with their instance profile (a role allowed this bucket only, and CloudWatch Logs
when `aws.logging` is on): no access key exists. The nodes sit in a VPC of their own; SSH and
the Docker API are open only to `network.allowedCidrs`, Swarm's ports only between the nodes.
Nodes run the AWS Deep Learning Base GPU AMI (NVIDIA driver included), found by lookup,
require IMDSv2, and power themselves off after `budget.ttlHours` (infra/bootstrap/). Spot
nodes are persistent spot requests (so that `pulumi destroy` cancels them); the manager keeps
one Elastic IP across stops and starts.

Outputs: those of every swarm target (infra/targets/swarm_outputs.py), `region`, and with
`aws.logging` the CloudWatch Logs group's name, `logGroup`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from contract.outputs import SwarmOutputs
from infra import nodes
from infra.config import Aws, ConfigError, StackConfig
from infra.nodes import Node, NodeAccess, PoolSpec
from infra.targets import TargetArgs, child
from infra.targets.aws_storage import Bucket, BucketArgs
from infra.targets.ingress import ingress_rules
from infra.targets.swarm_outputs import pool_and_swarm

# The Deep Learning Base GPU AMI (Ubuntu 22.04): NVIDIA driver, CUDA, Docker and the NVIDIA
# container toolkit. Owned by Amazon; the newest matching image is used.
AMI_OWNER = "amazon"
AMI_NAME = "Deep Learning Base OSS Nvidia Driver GPU AMI (Ubuntu 22.04) *"
BUCKET_OBJECT_ACTIONS = [
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
]
BUCKET_ACTIONS = ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]
LOG_ACTIONS = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]


def node_policy(bucket_arn: str, log_group_arn: str | None) -> str:
    """What the nodes' role may do: objects in this bucket, and its own log group if any."""
    statements: list[dict[str, Any]] = [
        {"Effect": "Allow", "Action": BUCKET_ACTIONS, "Resource": bucket_arn},
        {"Effect": "Allow", "Action": BUCKET_OBJECT_ACTIONS, "Resource": f"{bucket_arn}/*"},
    ]
    if log_group_arn is not None:
        statements.append(
            {"Effect": "Allow", "Action": LOG_ACTIONS, "Resource": f"{log_group_arn}:*"}
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


EC2_TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


@dataclass(frozen=True)
class NodeIdentityArgs:
    bucket_arn: pulumi.Output[str]
    log_retention_days: int | None


class NodeIdentity(pulumi.ComponentResource):
    """The nodes' role and instance profile: this bucket only (and logs), and no access key."""

    def __init__(
        self, name: str, args: NodeIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("trackday:aws:NodeIdentity", name, None, opts)
        self.role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=EC2_TRUST_POLICY,
            description="trackday GPU nodes: the stack's bucket only",
            opts=child(self),
        )
        self.log_group: aws.cloudwatch.LogGroup | None = None
        log_group_arn: pulumi.Output[str | None] = pulumi.Output.from_input(None)
        if args.log_retention_days is not None:
            self.log_group = aws.cloudwatch.LogGroup(
                f"{name}-logs", retention_in_days=args.log_retention_days, opts=child(self)
            )
            log_group_arn = self.log_group.arn
        aws.iam.RolePolicy(
            f"{name}-policy",
            role=self.role.id,
            policy=pulumi.Output.all(args.bucket_arn, log_group_arn).apply(
                lambda arns: node_policy(arns[0], arns[1])
            ),
            opts=child(self),
        )
        self.profile = aws.iam.InstanceProfile(
            f"{name}-profile", role=self.role.name, opts=child(self)
        )
        self.register_outputs({"role": self.role.arn})


@dataclass(frozen=True)
class NetworkArgs:
    allowed_cidrs: list[str]
    availability_zone: str


class Network(pulumi.ComponentResource):
    """A VPC with one public subnet; the nodes' security group opens only what the swarm needs."""

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("trackday:aws:Network", name, None, opts)
        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=nodes.NETWORK_CIDR,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            opts=child(self),
        )
        self.subnet = aws.ec2.Subnet(
            f"{name}-subnet",
            vpc_id=vpc.id,
            cidr_block=nodes.SUBNET_CIDR,
            availability_zone=args.availability_zone,
            map_public_ip_on_launch=True,
            opts=child(self),
        )
        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, opts=child(self))
        routes = aws.ec2.RouteTable(
            f"{name}-routes",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=gateway.id)],
            opts=child(self),
        )
        aws.ec2.RouteTableAssociation(
            f"{name}-subnet-routes",
            subnet_id=self.subnet.id,
            route_table_id=routes.id,
            opts=child(self),
        )
        ingress = [
            aws.ec2.SecurityGroupIngressArgs(
                description=rule.description,
                protocol=rule.protocol,
                from_port=rule.port,
                to_port=rule.port,
                cidr_blocks=list(args.allowed_cidrs) if rule.from_admins else None,
                self=None if rule.from_admins else True,
            )
            for rule in ingress_rules()
        ]
        # The S3 endpoint and images are reached over the internet; nothing else comes in.
        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-nodes",
            vpc_id=vpc.id,
            description="trackday nodes: admin from allowed ranges, swarm between nodes",
            ingress=ingress,
            egress=[
                aws.ec2.SecurityGroupEgressArgs(
                    protocol="-1", from_port=0, to_port=0, cidr_blocks=["0.0.0.0/0"]
                )
            ],
            opts=child(self),
        )
        self.register_outputs({"subnet": self.subnet.id})


@dataclass(frozen=True)
class NodePoolArgs:
    spec: PoolSpec
    access: NodeAccess
    config: StackConfig
    subnet_id: pulumi.Input[str]
    security_group_id: pulumi.Input[str]
    instance_profile: pulumi.Input[str]
    provider: aws.Provider


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
                "iam_instance_profile": args.instance_profile,
                "user_data_base64": nodes.user_data(
                    args.spec, role, args.access, encode=nodes.gzip_base64
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


class AwsTarget(pulumi.ComponentResource):
    """The `aws` target: bucket, node identity, network, GPU nodes and their swarm."""

    def __init__(self, name: str, args: TargetArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("trackday:targets:Aws", name, None, opts)
        config = args.config
        aws_config = config.aws or Aws()
        self.region = aws_config.region
        provider = aws.Provider(
            f"{name}-provider",
            region=aws_config.region,
            default_tags=aws.ProviderDefaultTagsArgs(
                tags={**config.tags, "trackday-stack": args.stack}
            ),
            opts=child(self),
        )
        in_region = child(self, providers=[provider])
        self.storage = Bucket(
            f"{name}-storage",
            BucketArgs(
                name=config.storage.bucket,
                protect=config.storage.protect,
                keep_deleted_days=config.storage.keep_deleted_days,
            ),
            opts=in_region,
        )
        self.identity = NodeIdentity(
            f"{name}-identity",
            NodeIdentityArgs(
                bucket_arn=self.storage.arn,
                log_retention_days=aws_config.log_retention_days if aws_config.logging else None,
            ),
            opts=in_region,
        )
        network = Network(
            f"{name}-network",
            NetworkArgs(
                allowed_cidrs=config.network.allowed_cidrs,
                availability_zone=aws_config.availability_zone or f"{aws_config.region}a",
            ),
            opts=in_region,
        )
        self.nodes = pool_and_swarm(
            name,
            self,
            args,
            "aws",
            lambda spec, access: NodePool(
                f"{name}-nodes",
                NodePoolArgs(
                    spec=spec,
                    access=access,
                    config=config,
                    subnet_id=network.subnet.id,
                    security_group_id=network.security_group.id,
                    instance_profile=self.identity.profile.name,
                    provider=provider,
                ),
                opts=in_region,
            ),
        )
        self.docker_provider = None  # not yet: `trackday dr` runs on the swarm over SSH
        self.run_network = None
        self.register_outputs(self.stack_outputs())

    def outputs(self) -> SwarmOutputs:
        return self.nodes.outputs(
            "aws",
            bucket_url=self.storage.url,
            s3_endpoint=f"https://s3.{self.region}.amazonaws.com",
            region=self.region,
            # Where the DeepRacer services log (awslogs-group): the nodes' role may write
            # there and may not create a group of its own.
            log_group=None if self.identity.log_group is None else self.identity.log_group.name,
        )

    def stack_outputs(self) -> dict[str, Any]:
        return self.outputs().to_exports()
