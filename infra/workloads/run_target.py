"""Where a stack's DeepRacer runs go, read from the stack's outputs.

The Pulumi program (from the target component's outputs, some of them Pulumi outputs) and
`trackday dr` (from `pulumi stack output`) both place runs with `run_target`, so a run
started from the command line lands where the GitOps one does. Imports no Pulumi.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from contract.outputs import (
    LOCAL_REGION,
    RECORDS,
    LocalOutputs,
    Outputs,
    OutputsError,
    SwarmSite,
    storage_env,
)
from contract.swarm import GPU_RESOURCE, constraint_label
from infra import xorg
from training.deepracer.params import Bucket
from training.deepracer.services import Site

# The local S3 server's name on the networks its clients share (`s3EndpointInNetwork`'s host).
LOCAL_S3_ALIAS = "s3"
BUCKET_URL = SwarmSite.key("bucket_url")  # the output messages name


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
    network to be reachable there as LOCAL_S3_ALIAS. `cloud` is the target's name;
    `log_group` the CloudWatch Logs group an aws stack with logging makes (output
    `logGroup`)."""

    manager: ManagerAccess | None  # None: this machine's engine
    bucket: Bucket
    bucket_url: str  # the same bucket as this machine reaches it (s3://, or az:// on azure)
    storage_env: Mapping[str, Any]
    credentials: tuple[Any, Any] | None
    single_node: bool
    s3_container: str | None = None
    cloud: str = "local"
    log_group: str | None = None
    display: str | None = None  # the local target: the user's $DISPLAY (DRfC desktop mode)
    xauthority: str | None = None  # and its cookie file

    @property
    def site(self) -> Site:
        """What the services are told of it. Cloud nodes advertise their GPUs to Swarm
        (infra/bootstrap/) and run an X server on one (infra/xorg.py) unless
        `deepracer.opengl` is false; this machine's engine does neither."""
        cloud = self.manager is not None
        return Site(
            self.bucket,
            self.credentials is not None,
            self.single_node,
            gpu_nodes=cloud,
            aws=self.cloud == "aws",
            log_group=self.log_group,
            display=xorg.DISPLAY if cloud else self.display,
            xauthority=None if cloud else self.xauthority,
        )


def local_display(environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    """This machine's X display and cookie file, as DRfC's desktop mode takes them:
    $DISPLAY, and $XAUTHORITY or else ~/.Xauthority where it exists."""
    display = environ.get("DISPLAY") or None
    cookie = environ.get("XAUTHORITY") or (
        os.path.join(environ["HOME"], ".Xauthority") if environ.get("HOME") else None
    )
    return display, cookie if display and cookie and os.path.isfile(cookie) else None


def run_target(
    stack: str, outputs: Mapping[str, Any] | Outputs, environ: Mapping[str, str] = os.environ
) -> RunTarget:
    """The run target that a stack's outputs describe: the program's record of its target,
    or what `pulumi stack output` printed (contract/outputs.py names the keys); on the local
    target `environ` gives the user's X display."""
    if not isinstance(outputs, Outputs):
        outputs = _record(stack, outputs)
    # Swarm targets name the bucket as the nodes reach it `nodeBucketUrl` (s3:// on aws and,
    # through the gateway, on azure, whose own `bucketUrl` is az://).
    s3_url = outputs.s3_url if isinstance(outputs, SwarmSite) else outputs.bucket_url
    if not isinstance(s3_url, str) or not s3_url.startswith("s3://"):
        raise RunTargetError(
            f"stack {stack} ({outputs.target}) has no S3 bucket ({BUCKET_URL} {s3_url}): DeepRacer "
            "runs need the local, aws or azure target, with storage.bucket named"
        )
    name = s3_url.removeprefix("s3://").strip("/")
    if isinstance(outputs, LocalOutputs):
        keys = (outputs.s3_access_key_id, outputs.s3_secret_access_key)
        bucket = Bucket(name, LOCAL_REGION, outputs.s3_endpoint_in_network)
        display, cookie = local_display(environ)
        return RunTarget(
            None,
            bucket,
            s3_url,
            storage_env(outputs),
            keys,
            True,
            outputs.s3_container,
            display=display,
            xauthority=cookie,
        )
    assert isinstance(outputs, SwarmSite), "_record gives no other record with an s3:// bucket"
    keys = (
        (outputs.s3_access_key_id, outputs.s3_secret_access_key)
        if outputs.s3_access_key_id is not None
        else None
    )
    bucket = Bucket(name, outputs.region or LOCAL_REGION, outputs.s3_endpoint or None)
    manager = ManagerAccess(
        outputs.manager_address, outputs.ssh_user, outputs.ssh_private_key, outputs.manager_host_key
    )
    return RunTarget(
        manager,
        bucket,
        outputs.bucket_url,
        storage_env(outputs),
        keys,
        int(outputs.node_count) == 1,
        cloud=str(outputs.target),
        log_group=outputs.log_group,
    )


def _record(stack: str, outputs: Mapping[str, Any]) -> Outputs:
    """The exported outputs as their target's record; what is missing or wrong is named."""
    target = outputs.get(SwarmSite.key("target"))
    bucket_url = outputs.get(
        SwarmSite.key("node_bucket_url"), outputs.get(SwarmSite.key("bucket_url"))
    )
    if target not in RECORDS or target == "gcp" or not isinstance(bucket_url, str):
        shown = bucket_url if isinstance(bucket_url, str) else "missing or not known yet"
        raise RunTargetError(
            f"stack {stack} ({target}) has no S3 bucket ({BUCKET_URL} {shown}): DeepRacer runs "
            "need the local, aws or azure target, with storage.bucket named"
        )
    try:
        return RECORDS[target].parse(outputs)
    except OutputsError as error:
        raise RunTargetError(
            f"stack {stack} has no output {error.key!r}: run `pulumi up` for it ({error.problem})"
        ) from None


# What makes this machine's engine a swarm whose node takes the runs' services (README).
SWARM_INIT = "docker swarm init --advertise-addr 127.0.0.1"


def label_command(key: str, value: str, node: str = "$(docker node ls -q)") -> str:
    return f"docker node update --label-add {key}={value} {node}"


def placement_problem(
    nodes: list[dict] | None,
    constraints: Iterable[str],
    local: bool,
    gpus: Mapping[str, int] | None = None,
) -> str | None:
    """Why Swarm would keep a run's tasks pending (it says nothing itself), or None.

    `nodes` is the manager's `docker node ls` data, None where the engine is no swarm
    manager; `constraints` are the services' `node.labels.KEY==VALUE` constraints, `gpus`
    the GPUs the tasks under each constraint reserve in all. On the local target the
    message gives both commands that make this machine the swarm."""
    wanted = sorted(set(constraints) | set(gpus or {}))
    if nodes is None:
        if not local:
            return "the engine is not a swarm manager: check the stack's manager node"
        labels = " && ".join(label_command(*constraint_label(c)) for c in wanted)
        return f"this machine's Docker engine is not a swarm manager: run `{SWARM_INIT}`" + (
            f", then `{labels}`" if labels else ""
        )
    ready = [
        n
        for n in nodes
        if n["Status"]["State"] == "ready" and n["Spec"].get("Availability") == "active"
    ]
    for constraint in wanted:
        key, value = constraint_label(constraint)
        labelled = [n for n in ready if n["Spec"].get("Labels", {}).get(key) == value]
        if not labelled:
            node = "$(docker node ls -q)" if local else "NODE"
            return (
                f"no ready node is labelled {key}={value}, which `{constraint}` needs: "
                f"`{label_command(key, value, node)}` on the manager"
                + ("" if local else " (the node bootstrap labels cloud nodes)")
            )
        needed = (gpus or {}).get(constraint, 0)
        have = sum(node_gpus(n) for n in labelled)
        if needed > have:
            return (
                f"the tasks on nodes labelled {key}={value} reserve {needed} GPUs (one "
                f"each), the ready ones advertise {have}: add GPU nodes (nodes.count), "
                "fewer workers, or let them share a GPU (deepracer.gpuPerWorker: false)"
            )
    return None


def node_gpus(node: dict) -> int:
    """The GPUs a node advertises to Swarm (`node-generic-resources`: one named resource
    per GPU, or a count)."""
    found = 0
    for resource in node.get("Description", {}).get("Resources", {}).get("GenericResources") or []:
        named = resource.get("NamedResourceSpec", {})
        discrete = resource.get("DiscreteResourceSpec", {})
        found += named.get("Kind") == GPU_RESOURCE
        found += int(discrete.get("Value", 0)) if discrete.get("Kind") == GPU_RESOURCE else 0
    return found
