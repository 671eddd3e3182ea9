"""Target `aws`: an S3 bucket, an instance role, a private network and a swarm of EC2 GPU nodes.

The bucket blocks all public access, encrypts at rest, keeps versions (old ones for
`storage.keepDeletedDays`, incomplete uploads a week), refuses requests not made over TLS,
and outlives `pulumi destroy` (retained, not protected: the destroy runs through) unless
the stack opts out, in which case it goes with its data. The nodes
reach it with their instance profile (a role allowed this bucket only, CloudWatch Logs
when `aws.logging` is on, and the swarm's parameters as the node's role may use them): no
access key exists. The nodes form the swarm themselves through Parameter Store
(infra/targets/aws_parameters.py, aws_nodes.py): a deploy runs nothing over SSH. The nodes
sit in a VPC of their own; SSH and the Docker API are open only to `network.allowedCidrs`,
Swarm's ports only between the nodes.
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
from infra.bootstrap.spec import Role
from infra.config import Aws
from infra.targets import TargetArgs, child, trainer_build_args
from infra.targets.aws_nodes import NodePool, NodePoolArgs
from infra.targets.aws_parameters import SwarmParameters, ssm_policy
from infra.targets.aws_storage import Bucket, BucketArgs
from infra.targets.ingress import ingress_rules
from infra.targets.swarm_outputs import pool_and_swarm
from infra.workloads.donkeycar import manager_build

BUCKET_OBJECT_ACTIONS = [
    "s3:GetObject",
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
    "s3:ListMultipartUploadParts",
]
BUCKET_ACTIONS = ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]
LOG_ACTIONS = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]


def node_policy(
    bucket_arn: str, log_group_arn: str | None, ssm: list[dict[str, Any]] | None = None
) -> str:
    """What a node's role may do: objects in this bucket, its own log group if any, and the
    swarm parameters as its role allows (`ssm`)."""
    statements: list[dict[str, Any]] = [
        {"Effect": "Allow", "Action": BUCKET_ACTIONS, "Resource": bucket_arn},
        {"Effect": "Allow", "Action": BUCKET_OBJECT_ACTIONS, "Resource": f"{bucket_arn}/*"},
    ]
    if log_group_arn is not None:
        statements.append(
            {"Effect": "Allow", "Action": LOG_ACTIONS, "Resource": f"{log_group_arn}:*"}
        )
    statements += ssm or []
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
    parameters: SwarmParameters
    roles: tuple[Role, ...]


class NodeIdentity(pulumi.ComponentResource):
    """A role and instance profile per node role (the manager's; the workers' if any): this
    bucket (and logs), the swarm parameters as the role may use them, and no access key."""

    def __init__(
        self, name: str, args: NodeIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("trackday:aws:NodeIdentity", name, None, opts)
        self.log_group: aws.cloudwatch.LogGroup | None = None
        log_group_arn: pulumi.Output[str | None] = pulumi.Output.from_input(None)
        if args.log_retention_days is not None:
            self.log_group = aws.cloudwatch.LogGroup(
                f"{name}-logs", retention_in_days=args.log_retention_days, opts=child(self)
            )
            log_group_arn = self.log_group.arn
        self.profiles: dict[Role, pulumi.Output[str]] = {}
        self.grants: list[pulumi.Resource] = []
        for role in args.roles:
            node_role = aws.iam.Role(
                f"{name}-{role}-role",
                assume_role_policy=EC2_TRUST_POLICY,
                description=f"trackday GPU {role}: the stack's bucket and swarm parameters",
                opts=child(self),
            )
            policy = pulumi.Output.all(
                args.bucket_arn, log_group_arn, args.parameters.join.arn
            ).apply(
                lambda values, role=role: node_policy(
                    values[0], values[1], ssm_policy(role, values[2])
                )
            )
            self.grants.append(
                aws.iam.RolePolicy(
                    f"{name}-{role}-policy", role=node_role.id, policy=policy, opts=child(self)
                )
            )
            profile = aws.iam.InstanceProfile(
                f"{name}-{role}-profile", role=node_role.name, opts=child(self)
            )
            self.profiles[role] = profile.name
        self.register_outputs({})


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
        trainer = manager_build(
            args.repo_root, config.donkeycar.version, trainer_build_args(config, gpu=True)
        )
        parameters = SwarmParameters(
            f"{name}-swarm-parameters",
            args.stack,
            self.storage.name.apply(trainer[0].request),
            opts=in_region,
        )
        self.identity = NodeIdentity(
            f"{name}-identity",
            NodeIdentityArgs(
                bucket_arn=self.storage.arn,
                log_retention_days=aws_config.log_retention_days if aws_config.logging else None,
                parameters=parameters,
                roles=("manager", "worker") if config.nodes.count > 1 else ("manager",),
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
                    profiles=self.identity.profiles,
                    grants=self.identity.grants,
                    provider=provider,
                    region=aws_config.region,
                    parameters=parameters,
                    trainer=trainer,
                    bucket=self.storage.name,
                ),
                opts=in_region,
            ),
            lambda pool: {
                "manager_ready": pool.manager_ready,
                "manager_host_key": lambda _ready: pool.manager_ready.host_key,
            },
            built_by_manager=lambda pool: pool.trainer_built,
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
