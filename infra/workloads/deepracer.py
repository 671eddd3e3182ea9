"""The DeepRacer run a stack keeps deployed (GitOps): `trackday:deepracerRun: training`.

`pulumi up` then declares, on the target's swarm, exactly the services that
training/deepracer/services.py describes (the data `trackday dr start-training` deploys
too): the trainer and N simulation workers, or the evaluation worker; the attachable
overlay network `sagemaker-local` the trainer's SageMaker container joins (unless the
target owns it: the local target does, as its S3 server must join it); a Swarm secret
with the bucket's keys where nodes have no identity; and the run's files in the bucket
(custom files and `training_params.yaml`, or `evaluation_params.yaml`), written before the
services start. The custom files are checked first (`requested`): a bad reward function
fails `pulumi up` and `trackday plan` before any resource is declared.
"""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker as docker_engine
import pulumi
import pulumi_docker as docker
from pulumi.dynamic import CreateResult, ResourceProvider, UpdateResult

from contract.swarm import (
    GPU_RESOURCE,
    JOB_LABEL,
    RUN_LABEL,
    TRAINER_ROLE,
    WORKLOAD_LABEL,
    ServiceSpec,
    placement,
    s3_credentials_file,
)
from infra.config import ConfigError, StackConfig
from infra.targets import Target
from infra.workloads.run_target import RunTarget, placement_problem
from training import storage
from training.deepracer import bucket_io
from training.deepracer.layout import CUSTOM_FILE_NAMES
from training.deepracer.params import Bucket, evaluation_files, training_files
from training.deepracer.preflight import preflight
from training.deepracer.services import (
    NETWORK,
    NETWORK_LABELS,
    WORKLOAD,
    credentials_secret,
    run_services,
)
from training.deepracer.settings import DeepRacerSettings


@dataclass(frozen=True)
class DeepRacerRunArgs:
    settings: DeepRacerSettings
    job: str  # training | evaluation
    custom_files: Path
    target: RunTarget
    provider: pulumi.ProviderResource | None = None  # the swarm manager's engine
    network: docker.Network | None = None  # the target's `sagemaker-local`, if it owns one


def requested(
    config: StackConfig, project_root: Path
) -> tuple[DeepRacerSettings, str, Path] | None:
    """The run the stack asks for, its custom files checked; None when it asks for none.

    Raises ConfigError naming each problem, before the program declares anything."""
    job = config.deepracer_run
    if job == "none":
        return None
    if config.deepracer is None:
        raise ConfigError(
            "deepracerRun",
            job,
            "a run needs the trackday:deepracer section "
            "(`trackday dr import` writes one from a DRfC folder)",
        )
    settings = config.deepracer
    folder = project_root / settings.custom_files_dir
    if job == "training":
        problems = preflight(folder, settings)
        errors = [str(p) for p in problems if not p.warning]
        if errors:
            raise ConfigError(
                "deepracer.customFilesDir",
                str(folder),
                "fix the custom files first:\n  " + "\n  ".join(errors),
            )
        for warning in (p for p in problems if p.warning):
            pulumi.log.warn(f"{folder}: {warning}")
    if config.target == "local":
        problem = placement_problem(local_swarm_nodes(), [placement(TRAINER_ROLE)], local=True)
        if problem:
            raise ConfigError("deepracerRun", job, problem)
    return settings, job, folder


def local_swarm_nodes() -> list[dict] | None:
    """This machine's swarm nodes, None where its engine is no swarm manager: the local
    target's services need the engine in swarm mode and its node labelled trainer (every
    service of a single-node run goes there), or `pulumi up` leaves them pending."""
    try:
        return docker_engine.from_env().api.nodes()
    except docker_engine.errors.DockerException:
        return None


def service_args(
    spec: ServiceSpec,
    secret_ids: Mapping[str, pulumi.Input[str]],
    network_ids: Mapping[str, pulumi.Input[str]],
) -> dict[str, Any]:
    """docker.Service arguments for one service (contract/swarm.py), field for field: the
    program's translator, as trackday.swarm_jobs.task_template is the CLI's."""
    container = docker.ServiceTaskSpecContainerSpecArgs(
        image=spec.image,
        args=list(spec.args),
        env=dict(spec.env),
        dir=spec.working_dir,
        init=spec.init or None,
        read_only=spec.read_only or None,
        labels=[
            docker.ServiceTaskSpecContainerSpecLabelArgs(label=k, value=v)
            for k, v in spec.labels.items()
        ],
        mounts=[
            docker.ServiceTaskSpecContainerSpecMountArgs(
                target=m.target, source=m.source, type=m.type, read_only=m.read_only
            )
            for m in spec.mounts
        ],
        secrets=[
            docker.ServiceTaskSpecContainerSpecSecretArgs(
                file_name=s.file, secret_id=secret_ids[s.secret], secret_name=s.secret
            )
            for s in spec.secrets
        ],
    )
    log_driver = (
        docker.ServiceTaskSpecLogDriverArgs(name=spec.log_driver, options=dict(spec.log_options))
        if spec.log_driver
        else None
    )
    task = docker.ServiceTaskSpecArgs(
        container_spec=container,
        placement=docker.ServiceTaskSpecPlacementArgs(constraints=list(spec.constraints)),
        restart_policy=docker.ServiceTaskSpecRestartPolicyArgs(condition=spec.restart_condition),
        networks_advanceds=[
            docker.ServiceTaskSpecNetworksAdvancedArgs(id=network_ids[n]) for n in spec.networks
        ],
        log_driver=log_driver,
        resources=docker.ServiceTaskSpecResourcesArgs(
            reservation=docker.ServiceTaskSpecResourcesReservationArgs(
                generic_resources=docker.ServiceTaskSpecResourcesReservationGenericResourcesArgs(
                    discrete_resources_specs=[f"{GPU_RESOURCE}={spec.gpus}"]
                )
            )
        )
        if spec.gpus
        else None,
    )
    return {
        "name": spec.name,
        "task_spec": task,
        "mode": docker.ServiceModeArgs(
            replicated=docker.ServiceModeReplicatedArgs(replicas=spec.replicas)
        ),
        "labels": [docker.ServiceLabelArgs(label=k, value=v) for k, v in spec.own_labels.items()],
    }


class RunFilesProvider(ResourceProvider):
    """Writes a run's files into its bucket from the program (the operator's machine).

    An evaluation's `evaluation_params.yaml` carries the time it was written (its stamp),
    so a new one is written only when the run's inputs change. Deleting leaves the files:
    they are the run's record, as DRfC leaves them."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        outs = self._write(props, claim=True)
        return CreateResult(f"{props['bucketUrl']}/{props['settings']['model_prefix']}", outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        moved = (
            olds.get("job"),
            olds.get("bucketUrl"),
            olds.get("settings", {}).get("model_prefix"),
        ) != ("training", news["bucketUrl"], news["settings"]["model_prefix"])
        return UpdateResult(self._write(news, claim=moved))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        return None

    @staticmethod
    def _write(props: dict[str, Any], claim: bool) -> dict[str, Any]:
        """`claim`: a training starts on this prefix now (created, or moved to it): refuse
        one holding a model unless the stack says `training.wipe`, as dr-start-training
        does without `-w`; a running run's own prefix is left as it is."""
        settings = DeepRacerSettings.model_validate(props["settings"])
        bucket = Bucket(**props["bucket"])
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        training = props["job"] == "training"
        if training and claim:
            with storage.environment(props["storageEnv"]):
                bucket_io.claim_prefix(
                    props["bucketUrl"],
                    settings.model_prefix,
                    settings.training.wipe,
                    "set trackday:deepracer.training.wipe: true",
                )
        if training:
            with tempfile.TemporaryDirectory() as folder:
                for name, text in props["customFiles"].items():
                    (Path(folder) / name).write_text(text)
                files = training_files(settings, bucket, Path(folder))
        else:
            files = evaluation_files(settings, bucket, stamp)
        with storage.environment(props["storageEnv"]):
            bucket_io.write_objects(props["bucketUrl"], files)
        kept = {k: v for k, v in props.items() if k != "storageEnv"}
        return {**kept, "keys": sorted(files), "stamp": stamp}


class RunFiles(pulumi.dynamic.Resource):
    keys: pulumi.Output[list[str]]
    stamp: pulumi.Output[str]

    def __init__(
        self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(RunFilesProvider(), name, {**props, "keys": None, "stamp": None}, opts)


class DeepRacerRun(pulumi.ComponentResource):
    """One DeepRacer run (training or evaluation) on the stack's swarm."""

    def __init__(
        self, name: str, args: DeepRacerRunArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__("trackday:workloads:DeepRacerRun", name, None, opts)
        settings, target, job = args.settings, args.target, args.job
        labels = {WORKLOAD_LABEL: WORKLOAD, RUN_LABEL: str(settings.run_id), JOB_LABEL: job}

        def child(**kwargs: Any) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, provider=args.provider, **kwargs)

        self.network = args.network or docker.Network(
            f"{name}-net",
            name=NETWORK,
            driver="overlay",
            attachable=True,
            labels=[
                docker.NetworkLabelArgs(label=k, value=v)
                for k, v in {WORKLOAD_LABEL: WORKLOAD, **NETWORK_LABELS}.items()
            ],
            opts=child(),
        )  # NETWORK_LABELS: rl_coach's compose refuses the network without them
        secret_ids: dict[str, pulumi.Output[str]] = {}
        if target.credentials is not None:
            secret_name = credentials_secret(settings, job)
            data = pulumi.Output.all(*target.credentials).apply(
                lambda keys: base64.b64encode(s3_credentials_file(*keys).encode()).decode()
            )
            secret = docker.Secret(
                f"{name}-s3",
                name=secret_name,
                data=pulumi.Output.secret(data),
                labels=[docker.SecretLabelArgs(label=k, value=v) for k, v in labels.items()],
                opts=child(delete_before_replace=True),
            )
            secret_ids[secret_name] = secret.id
        custom = (
            {n: (args.custom_files / n).read_text() for n in CUSTOM_FILE_NAMES}
            if job == "training"
            else {}
        )
        self.files = RunFiles(
            f"{name}-files",
            {
                "job": job,
                "settings": settings.model_dump(mode="json"),
                "bucket": {
                    "name": target.bucket.name,
                    "region": target.bucket.region,
                    "endpoint_url": target.bucket.endpoint_url,
                },
                "bucketUrl": target.bucket_url,
                "customFiles": custom,
                "storageEnv": pulumi.Output.secret(dict(target.storage_env)),
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.specs = run_services(settings, target.site, job)
        self.services = [
            docker.Service(
                f"{name}-{spec.name.rsplit('-', 1)[-1]}",
                **service_args(spec, secret_ids, {NETWORK: self.network.id}),
                opts=child(depends_on=[self.files]),
            )
            for spec in self.specs
        ]
        self.register_outputs(
            {"services": [s.name for s in self.services], "files": self.files.keys}
        )

    def stack_outputs(self) -> dict[str, Any]:
        return {
            "deepracerServices": [s.name for s in self.services],
            "deepracerFiles": self.files.keys,
        }


def deploy(
    name: str, run: tuple[DeepRacerSettings, str, Path], target: Target, stack: str
) -> dict[str, Any]:
    """Declare the requested run on a target component; its stack outputs.

    On the local target the default Docker provider is this machine's engine; a swarm
    target must give its manager's as `docker_provider`. A target that owns the runs'
    network (`run_network`) has the run deploy onto it."""
    from infra.workloads.run_target import RunTargetError, run_target

    settings, job, folder = run
    outputs = target.outputs()
    if outputs.target != "local" and target.docker_provider is None:
        raise ConfigError(
            "deepracerRun",
            job,
            f"the {outputs.target} target gives "
            "Pulumi no Docker provider for its swarm manager yet; leave "
            f"deepracerRun unset and run `trackday dr start-{job} --stack "
            f"{stack}`",
        )
    try:
        placed = run_target(stack, outputs)
        run_services(settings, placed.site, job)  # what the stack cannot give, said first
    except (RunTargetError, ValueError) as error:
        raise ConfigError("deepracerRun", job, str(error)) from None
    component = DeepRacerRun(
        name,
        DeepRacerRunArgs(settings, job, folder, placed, target.docker_provider, target.run_network),
    )
    return component.stack_outputs()
