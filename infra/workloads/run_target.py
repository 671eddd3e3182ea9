"""Where a stack's DeepRacer runs go, read from the stack's outputs.

The Pulumi program (from the target component's outputs, some of them Pulumi outputs) and
`trackday dr` (from `pulumi stack output`) both place runs with `run_target`, so a run
started from the command line lands where the GitOps one does. Imports no Pulumi.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from training.deepracer.params import Bucket

LOCAL_REGION = "us-east-1"
# The local S3 server's name on the networks its clients share (`s3EndpointInNetwork`'s host).
LOCAL_S3_ALIAS = "s3"


class RunTargetError(ValueError):
    """The stack cannot run DeepRacer, or lacks an output; the message says which."""


@dataclass(frozen=True)
class ManagerAccess:
    """How the operator reaches a swarm manager's engine: SSH with the stack's key."""

    address: str
    user: str
    private_key: Any
    host_key: Any = None


@dataclass(frozen=True)
class RunTarget:
    """The swarm's engine, the bucket as containers reach it, how the operator's machine
    reaches the bucket (environment for training.storage) and the S3 keys for containers
    on nodes without an identity. Keys may be Pulumi outputs inside the program. On the
    local target, `s3_container` is the S3 server's container, which must join the runs'
    network to be reachable there as LOCAL_S3_ALIAS."""

    manager: ManagerAccess | None  # None: this machine's engine
    bucket: Bucket
    bucket_url: str  # the same bucket as this machine reaches it (s3://, or az:// on azure)
    storage_env: Mapping[str, Any]
    credentials: tuple[Any, Any] | None
    single_node: bool
    s3_container: str | None = None


def run_target(stack: str, outputs: Mapping[str, Any]) -> RunTarget:
    """The run target that a stack's outputs describe (infra/targets/local.py and
    infra/targets/swarm_outputs.py name them)."""
    target = outputs.get("target")
    # Swarm targets name the bucket as the nodes reach it `nodeBucketUrl` (s3:// on aws and,
    # through the gateway, on azure, whose own `bucketUrl` is az://).
    s3_url = outputs.get("nodeBucketUrl", outputs.get("bucketUrl"))
    if not isinstance(s3_url, str) or not s3_url.startswith("s3://"):
        shown = s3_url if isinstance(s3_url, str) else "missing or not known yet"
        raise RunTargetError(
            f"stack {stack} ({target}) has no S3 bucket (bucketUrl {shown}): DeepRacer runs "
            "need the local, aws or azure target, with storage.bucket named")
    name = s3_url.removeprefix("s3://").strip("/")
    try:
        if target == "local":
            keys = (outputs["s3AccessKeyId"], outputs["s3SecretAccessKey"])
            storage_env = {"AWS_ENDPOINT_URL": outputs["s3Endpoint"],
                           "AWS_ACCESS_KEY_ID": keys[0], "AWS_SECRET_ACCESS_KEY": keys[1],
                           "AWS_DEFAULT_REGION": LOCAL_REGION}
            bucket = Bucket(name, LOCAL_REGION, outputs["s3EndpointInNetwork"])
            return RunTarget(None, bucket, s3_url, storage_env, keys, True,
                             outputs["s3Container"])
        keys = ((outputs["s3AccessKeyId"], outputs["s3SecretAccessKey"])
                if "s3AccessKeyId" in outputs else None)
        bucket = Bucket(name, outputs.get("region", LOCAL_REGION),
                        outputs.get("s3Endpoint") or None)
        # The operator's own cloud login; on azure adlfs needs the storage account's name.
        storage_env = ({"AZURE_STORAGE_ACCOUNT_NAME": outputs["storageAccount"]}
                       if "storageAccount" in outputs else {})
        manager = ManagerAccess(outputs["managerAddress"], outputs["sshUser"],
                                outputs["sshPrivateKey"], outputs.get("managerHostKey"))
        return RunTarget(manager, bucket, outputs["bucketUrl"], storage_env, keys,
                         int(outputs.get("nodeCount", 1)) == 1)
    except KeyError as missing:
        raise RunTargetError(
            f"stack {stack} has no output {missing}: run `pulumi up` for it") from None
