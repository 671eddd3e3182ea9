"""The stack outputs: one typed record per kind of target, written by the program, read by the CLI.

A target component builds its record with `build()` (inside the program the values may be
Pulumi outputs, so nothing is checked there) and exports `to_exports()`; the CLI, the
dashboard and `infra/workloads/run_target.py` read what `pulumi stack output` printed with
`parse()`, which names the missing or wrong output. Each output key is a field here, named
in camelCase by the alias generator: this module is the only definition of the keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

# The Pulumi project folder whose stacks these outputs come from (Pulumi.yaml).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOCAL_REGION = "us-east-1"


class OutputsError(ValueError):
    """A stack's outputs lack a key or hold a wrong value; the message names the key."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"output {key}: {problem}")
        self.key = key
        self.problem = problem


class Outputs(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    # Whether an unset (None) value is exported as null rather than left out.
    exports_none: ClassVar[bool] = False

    @classmethod
    def build(cls, **values: Any) -> Self:
        """The record as the program declares it: values may be Pulumi outputs, unchecked."""
        return cls.model_construct(**values)

    @classmethod
    def parse(cls, data: Any) -> Self:
        """The record from exported outputs (a JSON object), checked."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise OutputsError(where, err["msg"]) from None

    def to_exports(self) -> dict[str, Any]:
        """The outputs by key; unset (None) ones are left out unless `exports_none`."""
        exports: dict[str, Any] = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name, None)
            if field.exclude or (value is None and not self.exports_none):
                continue
            exports[field.alias or name] = (
                value.to_exports() if isinstance(value, Outputs) else value
            )
        return exports

    @classmethod
    def key(cls, field: str) -> str:
        """The exported key of a field (for messages that name it)."""
        return cls.model_fields[field].alias or field

    @classmethod
    def value(cls, exports: Mapping[str, Any], field: str, default: Any = None) -> Any:
        """One output, by its field here, from exports not checked as a whole (the dashboard
        shows a stack whatever it lacks; the CLI picks the record by `target`)."""
        return exports.get(cls.key(field), default)


class BucketAccess(Outputs):
    """How this machine reaches a stack's bucket: what `storage_env` reads, on every target."""

    target: str
    bucket_url: str
    s3_endpoint: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    # azure: the storage account's name (adlfs needs it on this machine).
    storage_account: str | None = None

    def require(self, *fields: str) -> None:
        """Raise OutputsError naming the first of `fields` that is unset."""
        for field in fields:
            if getattr(self, field) is None:
                raise OutputsError(self.key(field), f"the {self.target} target exports it")


class LocalOutputs(BucketAccess):
    """Target `local` (infra/targets/local.py): the rclone S3 server and the trainer image.
    `s3Endpoint` is the server from this machine, `s3EndpointInNetwork` from containers on
    `network` and on the DeepRacer runs' network, `s3Container` its container."""

    target: str = "local"
    s3_endpoint_in_network: str
    network: str | None = None
    s3_container: str
    image: str | None = None

    @classmethod
    def parse(cls, data: Any) -> Self:
        record = super().parse(data)
        record.require(*LOCAL_KEYS)
        return record


# What the local target always exports and the S3 server's clients need.
LOCAL_KEYS = ("s3_endpoint", "s3_access_key_id", "s3_secret_access_key")


class DonkeyTraining(Outputs):
    """The donkeycar settings every training job runs with (null: the car config decides)."""

    exports_none: ClassVar[bool] = True

    max_run_hours: float | None
    donkeycar_version: str
    model_type: str | None = None  # None: the car config's DEFAULT_MODEL_TYPE
    overrides: dict[str, Any]


class SwarmTraining(DonkeyTraining):
    """`training` of a swarm target: the GPUs a Swarm job reserves."""

    gpus: int


class VertexTraining(DonkeyTraining):
    """`training` of the gcp target: the machine a Vertex AI custom job asks for."""

    machine_type: str
    accelerator_type: str
    accelerator_count: int
    spot: bool
    boot_disk_gb: int


class SwarmSite(BucketAccess):
    """Where a swarm target's runs go: its bucket, its manager and how containers reach storage.

    `bucketUrl` is the bucket as this machine reaches it (s3:// on aws, az:// on azure),
    `nodeBucketUrl` as containers on the nodes do (through the S3 gateway on azure, whose S3
    keys are `s3AccessKeyId` and `s3SecretAccessKey`: the nodes there have no identity that S3
    knows).
    """

    node_bucket_url: str | None = None
    manager_address: str
    manager_private_address: str | None = None
    manager_host_key: str | None = None
    ssh_user: str
    ssh_private_key: str
    # Not exported by the stacks: an outputs file may set it for a manager behind a forwarded port.
    ssh_port: int = Field(default=22, exclude=True)
    node_count: int = 1
    region: str | None = None
    # aws with logging: the CloudWatch Logs group the DeepRacer services write to.
    log_group: str | None = None
    location: str | None = None  # azure

    @property
    def s3_url(self) -> str:
        return self.node_bucket_url or self.bucket_url


class SwarmOutputs(SwarmSite):
    """An aws or azure stack (infra/targets/swarm_outputs.py), as a Swarm job needs it."""

    image: str
    training: SwarmTraining


class GcpOutputs(BucketAccess):
    """Target `gcp` (infra/targets/gcp.py), as a Vertex AI job needs it. With `gcp.nodePool`
    the swarm's outputs are exported too (those whose key is not taken here), its image as
    `swarmImage`."""

    target: str = "gcp"
    project: str
    region: str
    image: str
    image_repository: str | None = None
    trainer_service_account: str
    trainer_key: str | None = None
    training: VertexTraining
    swarm_image: str | None = None
    zone: str | None = None
    swarm: SwarmOutputs | None = Field(default=None, exclude=True)

    def to_exports(self) -> dict[str, Any]:
        exports = super().to_exports()
        if self.swarm is not None:
            exports |= {k: v for k, v in self.swarm.to_exports().items() if k not in exports}
        return exports


def storage_env(outputs: BucketAccess) -> dict[str, str]:
    """Environment the storage layer needs to reach the stack's bucket from this machine.

    The local target's S3 server takes the generated keys; cloud buckets use this machine's
    own cloud login (gcloud application-default credentials, AWS profile, Azure login), with
    the storage account named on azure.
    """
    if outputs.target == "local":
        outputs.require(*LOCAL_KEYS)
        return {
            "AWS_ENDPOINT_URL": outputs.s3_endpoint,
            "AWS_ACCESS_KEY_ID": outputs.s3_access_key_id,
            "AWS_SECRET_ACCESS_KEY": outputs.s3_secret_access_key,
            "AWS_DEFAULT_REGION": LOCAL_REGION,
        }
    if outputs.storage_account is not None:
        return {"AZURE_STORAGE_ACCOUNT_NAME": outputs.storage_account}
    return {}


RECORDS: dict[str, type[Outputs]] = {
    "local": LocalOutputs,
    "aws": SwarmSite,
    "azure": SwarmSite,
    "gcp": GcpOutputs,
}
