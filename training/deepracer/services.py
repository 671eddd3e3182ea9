"""The Docker Swarm services of a DeepRacer run, as plain data.

One function per job turns the run settings into service definitions: the trainer
(`rl_coach`, on the node labelled `trackday.role=trainer`, with the Docker socket mounted
because it starts the SageMaker-style training container itself) and the simulation workers
(`robomaker`, N replicas on nodes labelled `trackday.role=simulation`); an evaluation is a
simulation service of its own. The same data is what production deploys (pulumi-docker over
SSH to the manager) and what tests deploy on a single-node swarm. Names carry the run id, so
several runs live side by side, as DRfC's `deepracer-<run id>` stacks do.
"""

from __future__ import annotations

from dataclasses import dataclass

from contract.swarm import (
    CREDENTIALS_PATH,
    JOB_LABEL,
    MODEL_PREFIX_LABEL,
    ROLE_LABEL,
    RUN_LABEL,
    SIMULATION_ROLE,
    TRAINER_ROLE,
    WORKLOAD_LABEL,
    Mount,
    SecretMount,
    ServiceSpec,
    credentials_secret_name,
    placement,
)
from training.deepracer.params import Bucket
from training.deepracer.settings import DeepRacerSettings

WORKLOAD = "deepracer"  # the workload label's value on everything a DeepRacer run makes
JOBS = ("training", "evaluation")

# rl_coach starts the training container on this network; robomaker reaches it there.
NETWORK = "sagemaker-local"
# SageMaker local mode's compose file declares NETWORK as its own; Compose v2 refuses an existing
# network without these labels (DRfC bin/activate.sh makes it with both; trackday/dr_network.py).
NETWORK_LABELS = {"com.docker.compose.network": NETWORK, "com.docker.compose.project": NETWORK}
DOCKER_SOCKET = "/var/run/docker.sock"
SAGEMAKER_DIR = "/tmp/sagemaker"
# An X server's socket folder, and where simapp's run.sh looks for the X cookie
# (XAUTHORITY=/root/.Xauthority): DRfC's docker/docker-compose-local-xorg.yml mounts both.
X_SOCKET_DIR = "/tmp/.X11-unix"
XAUTHORITY_IN_CONTAINER = "/root/.Xauthority"
# Beside DISPLAY: simapp's run.sh then starts no Xvfb of its own, Qt does not try shared
# memory across the container boundary, and the NVIDIA runtime mounts its OpenGL libraries
# too (its default capabilities are compute and utility only). DRfC's local-xorg compose file.
X_ENV = {"USE_EXTERNAL_X": "true", "QT_X11_NO_MITSHM": "1", "NVIDIA_DRIVER_CAPABILITIES": "all"}
# DRfC's docker-compose-aws.yml: botocore waits for the instance's metadata service (the
# node's role) instead of giving up while a busy node answers slowly.
AWS_METADATA_ENV = {"AWS_METADATA_SERVICE_TIMEOUT": "3", "AWS_METADATA_SERVICE_NUM_ATTEMPTS": "5"}
# The worker's VNC server with the GUI on (DR_GUI_ENABLE): simapp's run.sh starts x11vnc on
# this port itself, but only beside the Xvfb it starts when there is no external X server
# (docker/files/robomaker/run.sh, v6.0.4); with one (`deepracer.opengl`) the worker starts it
# on that display as run.sh does (`_gui_command`: its flags, and `&`, since with `WAIT:`
# x11vnc waits for the first viewer before it goes to the background). Never published on
# a node: the port is reached on the runs' network only (trackday/dr_gui.py says why).
VNC_PORT = 5900
TRAINER_COMMAND = (
    "source /root/sagemaker-venv/bin/activate && python3 /opt/ml/code/rl_coach/start.py"
)
# The trainer's SageMaker container, which rl_coach starts through Docker Compose outside
# Swarm, sees every GPU (the image sets NVIDIA_VISIBLE_DEVICES=all, docker/Dockerfile.combined)
# and is handed the trainer's CUDA_VISIBLE_DEVICES (docker/files/rl-coach/start.py, v6.0.4).
# So it trains on the GPU Swarm reserved for the trainer (its UUID, which CUDA takes there)
# unless `simulator.sagemakerCudaDevices` names one: never on a worker's.
TRAINER_ON_ITS_GPU = 'export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES:-$DOCKER_RESOURCE_GPU}"'
# A task that reserves no Swarm GPU gets no DOCKER_RESOURCE_GPU, and the NVIDIA runtime then
# reads NVIDIA_VISIBLE_DEVICES (nvidia-container-toolkit, nvidia-container-runtime-hook
# `getDevicesFromEnvvar`): `all` in simapp's image, so such a worker would see, and its
# TensorFlow fill, every GPU of the node (DRfC's docs/multi_gpu.md, "greedily"). Workers
# sharing a GPU get the node's first one only: the one its X server renders on
# (infra/xorg.py), where DRfC's one-GPU set-up runs everything.
SHARED_GPU_ENV = {"NVIDIA_VISIBLE_DEVICES": "0"}


@dataclass(frozen=True)
class Site:
    """What the services need to know of where they run (the run target): the bucket as
    containers reach it, whether keys come as a secret, whether everything runs on one
    node, whether nodes advertise GPUs to Swarm, whether they are on AWS, and the stack's
    CloudWatch Logs group."""

    bucket: Bucket
    with_credentials: bool = False
    single_node: bool = False
    gpu_nodes: bool = False
    aws: bool = False
    log_group: str | None = None
    # The X server the workers may render on: the nodes' GPU one (infra/xorg.py DISPLAY), or
    # on the local target the user's $DISPLAY with its cookie file $XAUTHORITY.
    display: str | None = None
    xauthority: str | None = None


# The middle of a job's service names: DRfC's `-eval` stacks for evaluations.
_JOB_PREFIXES = {"training": "", "evaluation": "eval-"}


def service_prefix(settings: DeepRacerSettings, job: str = "training") -> str:
    """`trackday-dr-<run id>` for training, `trackday-dr-eval-<run id>` for evaluation."""
    if job not in _JOB_PREFIXES:
        raise ValueError(f"job {job!r} is not one of {', '.join(JOBS)}")
    return f"trackday-dr-{_JOB_PREFIXES[job]}{settings.run_id}"


def credentials_secret(settings: DeepRacerSettings, job: str = "training") -> str:
    """The name of the Swarm secret holding a run's S3 credentials file (one per run)."""
    return credentials_secret_name(service_prefix(settings, job))


def _labels(settings: DeepRacerSettings, job: str, role: str) -> dict[str, str]:
    return {
        WORKLOAD_LABEL: WORKLOAD,
        RUN_LABEL: str(settings.run_id),
        JOB_LABEL: job,
        ROLE_LABEL: role,
        MODEL_PREFIX_LABEL: settings.model_prefix,
    }


def _logging(settings: DeepRacerSettings, site: Site) -> dict:
    """The awslogs driver into the group the stack made (with its retention); never
    `awslogs-create-group`, which the nodes' role may not do (DRfC's docker-compose-cwlog.yml
    creates `/deepracer-for-cloud` with the user's own rights instead)."""
    if not settings.cloudwatch.enabled:
        return {}
    if site.log_group is None:
        raise ValueError(
            "cloudwatch.enabled needs the stack's CloudWatch Logs group: an aws "
            "stack with trackday:aws.logging: true (or set cloudwatch.enabled: "
            "false)"
        )
    return {
        "log_driver": "awslogs",
        "log_options": {
            "awslogs-group": site.log_group,
            "awslogs-region": site.bucket.region,
            "tag": f"{settings.cloudwatch.log_stream_prefix}{{{{.Name}}}}",
        },
    }


def _gpu(settings: DeepRacerSettings, site: Site) -> int:
    """One GPU for the trainer on nodes that advertise theirs, so Swarm puts no other GPU job
    (a DonkeyCar training, a worker) on it."""
    return 1 if site.gpu_nodes and settings.simulator.uses_gpu else 0


def _worker_gpu(settings: DeepRacerSettings, site: Site) -> tuple[int, dict[str, str]]:
    """The GPUs a worker reserves, and its environment for them (`deepracer.gpuPerWorker`:
    unset, an own GPU each where the workers have nodes of their own; on a one-node stack
    they share one, as DRfC runs them)."""
    if not site.gpu_nodes:
        return 0, {}
    own = settings.gpu_per_worker
    if own is None:
        own = not site.single_node
    if own and settings.simulator.uses_gpu:
        return 1, {}
    return 0, SHARED_GPU_ENV


def _cuda(devices: str | None) -> dict[str, str]:
    return {"CUDA_VISIBLE_DEVICES": devices} if devices else {}


def _s3_env(bucket: Bucket, secret: str | None) -> dict[str, str]:
    endpoint = {"S3_ENDPOINT_URL": bucket.endpoint_url} if bucket.endpoint_url else {}
    if secret is not None:
        endpoint["AWS_SHARED_CREDENTIALS_FILE"] = CREDENTIALS_PATH
    return endpoint


def _secrets(secret: str | None) -> tuple[SecretMount, ...]:
    return (SecretMount(secret),) if secret is not None else ()


def _simulation_env(
    settings: DeepRacerSettings, site: Site, secret: str | None, rtf: float | None
) -> dict[str, str]:
    cameras = settings.cameras
    env = {
        "WORLD_NAME": settings.world,
        "APP_REGION": site.bucket.region,
        "KINESIS_VIDEO_STREAM_NAME": cameras.kinesis_stream_name,
        "ENABLE_KINESIS": str(cameras.kvs),
        "ENABLE_GUI": str(cameras.gui),
        "ROS_MASTER_URI": "http://localhost:11311/",
        "ROS_IP": "127.0.0.1",
        "GAZEBO_ARGS": settings.simulator.gazebo_args,
        "GAZEBO_RENDER_ENGINE": "ogre2",
        "DOCKER_REPLICA_SLOT": "{{.Task.Slot}}",  # Swarm fills in 1..N: the worker's index
    }
    if rtf is not None:
        env["RTF_OVERRIDE"] = str(rtf)
    return (
        env
        | _cuda(settings.simulator.robomaker_cuda_devices)
        | _worker_gpu(settings, site)[1]
        | _x_env(settings, site)
        | _common_env(site, secret)
    )


def _uses_x(settings: DeepRacerSettings, site: Site) -> bool:
    """`deepracer.opengl`; unset: on where the nodes have GPUs (and so an X server on one:
    infra/config.py's `deepracer_opengl` reads the same key with the same default)."""
    opengl = settings.opengl if settings.opengl is not None else site.gpu_nodes
    return opengl and site.display is not None


def _x_env(settings: DeepRacerSettings, site: Site) -> dict[str, str]:
    if not _uses_x(settings, site):
        return {}
    cookie = {"XAUTHORITY": XAUTHORITY_IN_CONTAINER} if site.xauthority else {}
    return {"DISPLAY": str(site.display)} | X_ENV | cookie


def _x_mounts(settings: DeepRacerSettings, site: Site) -> tuple[Mount, ...]:
    """The X socket folder (and the user's cookie file, read-only) for the workers."""
    if not _uses_x(settings, site):
        return ()
    cookie = (
        (Mount(site.xauthority, XAUTHORITY_IN_CONTAINER, read_only=True),)
        if site.xauthority
        else ()
    )
    return (Mount(X_SOCKET_DIR, X_SOCKET_DIR), *cookie)


def _gui_command(settings: DeepRacerSettings, site: Site, command: str) -> str:
    """The worker's command, after x11vnc on the nodes' headless X server when the GUI is
    on. Not on the local target's X server: that is the user's own desktop, where the GUI's
    windows show anyway (DRfC's desktop mode), and which no VNC server should share."""
    if not (settings.cameras.gui and site.gpu_nodes and _uses_x(settings, site)):
        return command
    vnc = f"x11vnc -bg -forever -nopw -rfbport {VNC_PORT} -display WAIT$DISPLAY"
    return f"{vnc} & {command}"


def _common_env(site: Site, secret: str | None) -> dict[str, str]:
    return _s3_env(site.bucket, secret) | (AWS_METADATA_ENV if site.aws else {})


def training_services(settings: DeepRacerSettings, site: Site) -> list[ServiceSpec]:
    """The trainer and the simulation workers of a training run.

    Where the site has credentials the run's credentials secret (`credentials_secret`) is
    mounted (nodes without an identity: the local S3 server, the Azure gateway); on a single
    node the workers go to the trainer node (local target).
    """
    secret = credentials_secret(settings) if site.with_credentials else None
    prefix = service_prefix(settings)
    pretrained = settings.pretrained
    bucket = site.bucket
    trainer_env = {
        "RUN_ID": str(settings.run_id),
        "AWS_REGION": bucket.region,
        "SAGEMAKER_IMAGE": settings.simulator.reference,
        "PRETRAINED": str(pretrained.enabled),
        "PRETRAINED_S3_PREFIX": pretrained.model_prefix,
        "PRETRAINED_S3_BUCKET": bucket.name,
        "PRETRAINED_CHECKPOINT": pretrained.checkpoint,
        "MODEL_S3_PREFIX": settings.model_prefix,
        "MODEL_S3_BUCKET": bucket.name,
        "HYPERPARAMETER_FILE_S3_KEY": f"{settings.custom_files_prefix}/hyperparameters.json",
        "MODELMETADATA_FILE_S3_KEY": f"{settings.custom_files_prefix}/model_metadata.json",
    }
    if settings.training.max_steps_per_iteration:
        trainer_env["MAX_MEMORY_STEPS"] = str(settings.training.max_steps_per_iteration)
    trainer_env |= _cuda(settings.simulator.sagemaker_cuda_devices)
    trainer = ServiceSpec(
        name=f"{prefix}-trainer",
        image=settings.simulator.reference,
        args=(
            f"{TRAINER_ON_ITS_GPU} && {TRAINER_COMMAND}"
            if _gpu(settings, site)
            else TRAINER_COMMAND,
        ),
        env=trainer_env | _common_env(site, secret),
        constraints=(placement(TRAINER_ROLE),),
        networks=(NETWORK,),
        mounts=(Mount(DOCKER_SOCKET, DOCKER_SOCKET), Mount(SAGEMAKER_DIR, SAGEMAKER_DIR)),
        secrets=_secrets(secret),
        labels=_labels(settings, "training", TRAINER_ROLE),
        working_dir="/opt/ml/code/",
        gpus=_gpu(settings, site),  # for the SageMaker container the trainer starts
        **_logging(settings, site),
    )
    mode = "multi" if settings.workers > 1 else "run"
    simulation_env = _simulation_env(settings, site, secret, settings.training.real_time_factor)
    simulation_env |= {
        "SAGEMAKER_SHARED_S3_PREFIX": settings.model_prefix,
        "SAGEMAKER_SHARED_S3_BUCKET": bucket.name,
        "S3_YAML_NAME": settings.training_params_file,
    }
    simulation = ServiceSpec(
        name=f"{prefix}-simulation",
        image=settings.simulator.reference,
        args=(
            _gui_command(
                settings, site, f"/opt/ml/code/run.sh {mode} distributed_training.launch.py"
            ),
        ),
        env=simulation_env,
        constraints=(placement(TRAINER_ROLE if site.single_node else SIMULATION_ROLE),),
        replicas=settings.workers,
        networks=(NETWORK,),
        mounts=_x_mounts(settings, site),
        secrets=_secrets(secret),
        labels=_labels(settings, "training", SIMULATION_ROLE),
        init=True,
        gpus=_worker_gpu(settings, site)[0],
        **_logging(settings, site),
    )
    return [trainer, simulation]


def evaluation_services(settings: DeepRacerSettings, site: Site) -> list[ServiceSpec]:
    """One simulation worker that evaluates `settings.model_prefix` (no trainer needed)."""
    secret = credentials_secret(settings, "evaluation") if site.with_credentials else None
    env = _simulation_env(settings, site, secret, settings.evaluation.real_time_factor)
    env |= {
        "DEBUG_REWARD": str(settings.evaluation.debug_reward),
        "MODEL_S3_PREFIX": settings.model_prefix,
        "MODEL_S3_BUCKET": site.bucket.name,
        "S3_YAML_NAME": settings.evaluation_params_file,
        "ROLLOUT_IDX": "0",
    }
    return [
        ServiceSpec(
            name=f"{service_prefix(settings, 'evaluation')}-simulation",
            image=settings.simulator.reference,
            args=(_gui_command(settings, site, "/opt/ml/code/run.sh run evaluation.launch.py"),),
            env=env,
            constraints=(placement(TRAINER_ROLE if site.single_node else SIMULATION_ROLE),),
            networks=(NETWORK,),
            mounts=_x_mounts(settings, site),
            secrets=_secrets(secret),
            labels=_labels(settings, "evaluation", SIMULATION_ROLE),
            init=True,
            gpus=_worker_gpu(settings, site)[0],
            **_logging(settings, site),
        )
    ]


def run_services(settings: DeepRacerSettings, site: Site, job: str) -> list[ServiceSpec]:
    """The services of a `training` or `evaluation` run: what both deployers take."""
    if job not in JOBS:
        raise ValueError(f"job {job!r} is not one of {', '.join(JOBS)}")
    build = training_services if job == "training" else evaluation_services
    return build(settings, site)
