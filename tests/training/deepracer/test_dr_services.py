"""Service definitions of a run, checked as data (deploying them is the swarm's test)."""

import pytest

from contract.swarm import GPU_RESOURCE, WORKLOAD_LABEL
from trackday.swarm_jobs import create_service_args
from training.deepracer.params import Bucket
from training.deepracer.services import (
    TRAINER_COMMAND,
    TRAINER_ON_ITS_GPU,
    Site,
    evaluation_services,
    run_services,
    service_prefix,
    training_services,
)
from training.deepracer.settings import DeepRacerSettings

BUCKET = Bucket(name="runs", region="eu-west-1", endpoint_url="http://10.0.0.2:9000")
SITE = Site(BUCKET)


def settings(**values):
    return DeepRacerSettings.model_validate(values)


def test_service_prefix_names_each_job_as_run_services_calls_it():
    """JOBS says "evaluation"; the prefix once expected "eval" and named an evaluation's
    services (and secret) `trackday-dr-evaluation-<id>` when given the job's own name."""
    assert service_prefix(settings(run_id=5), "evaluation") == "trackday-dr-eval-5"
    assert service_prefix(settings(run_id=5), "training") == "trackday-dr-5"
    with pytest.raises(ValueError, match="job 'eval' is not one of training, evaluation"):
        service_prefix(settings(), "eval")


def test_training_trainer_and_workers():
    trainer, workers = training_services(
        settings(
            run_id=3,
            workers=4,
            model_prefix="m-2",
            pretrained={"enabled": True, "model_prefix": "m-1"},
            simulator={"tag": "6.0.4-cpu"},
        ),
        Site(BUCKET, with_credentials=True),
    )
    assert (trainer.name, workers.name) == ("trackday-dr-3-trainer", "trackday-dr-3-simulation")
    assert trainer.image == workers.image == "awsdeepracercommunity/deepracer-simapp:6.0.4-cpu"
    assert trainer.constraints == ("node.labels.trackday.role==trainer",)
    assert workers.constraints == ("node.labels.trackday.role==simulation",)
    assert (trainer.replicas, workers.replicas) == (1, 4)
    assert {m.target for m in trainer.mounts} == {"/var/run/docker.sock", "/tmp/sagemaker"}
    assert workers.mounts == ()
    assert trainer.env["RUN_ID"] == "3" and trainer.env["MODEL_S3_PREFIX"] == "m-2"
    assert (trainer.env["PRETRAINED"], trainer.env["PRETRAINED_S3_PREFIX"]) == ("True", "m-1")
    assert trainer.env["HYPERPARAMETER_FILE_S3_KEY"] == "custom_files/hyperparameters.json"
    assert trainer.env["SAGEMAKER_IMAGE"] == trainer.image
    for service in (trainer, workers):
        assert service.env["S3_ENDPOINT_URL"] == "http://10.0.0.2:9000"
        assert service.env["AWS_SHARED_CREDENTIALS_FILE"] == "/run/secrets/s3-credentials"
        assert [(s.secret, s.file) for s in service.secrets] == [
            ("trackday-dr-3-s3", "s3-credentials")
        ]
        assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(service.env)
        assert service.restart_condition == "none" and service.networks == ("sagemaker-local",)
        assert service.labels["trackday.run"] == "3"
        assert service.labels[WORKLOAD_LABEL] == "deepracer"
    assert workers.args == ("/opt/ml/code/run.sh multi distributed_training.launch.py",)
    assert workers.env["S3_YAML_NAME"] == "training_params.yaml"
    assert workers.env["SAGEMAKER_SHARED_S3_BUCKET"] == "runs"
    assert workers.env["DOCKER_REPLICA_SLOT"] == "{{.Task.Slot}}" and workers.init
    assert "RTF_OVERRIDE" not in workers.env


def test_one_worker_runs_single_mode_and_identity_needs_no_keys():
    trainer, workers = training_services(
        settings(training={"real_time_factor": 2.0}), Site(Bucket(name="runs"))
    )
    assert workers.args == ("/opt/ml/code/run.sh run distributed_training.launch.py",)
    assert workers.env["RTF_OVERRIDE"] == "2.0"
    for service in (trainer, workers):
        assert not {"S3_ENDPOINT_URL", "AWS_SHARED_CREDENTIALS_FILE"} & set(service.env)
        assert service.secrets == ()


def test_runs_side_by_side_have_distinct_names():
    names = {s.name for run in (0, 1) for s in training_services(settings(run_id=run), SITE)}
    names |= {s.name for s in evaluation_services(settings(run_id=0), SITE)}
    assert len(names) == 5


def test_evaluation_service():
    (service,) = evaluation_services(
        settings(run_id=1, evaluation={"debug_reward": True}),
        Site(BUCKET, with_credentials=True, single_node=True),
    )
    assert service.name == "trackday-dr-eval-1-simulation"
    assert [s.secret for s in service.secrets] == ["trackday-dr-eval-1-s3"]
    assert service.args == ("/opt/ml/code/run.sh run evaluation.launch.py",)
    assert service.env["S3_YAML_NAME"] == "evaluation_params.yaml"
    assert (service.env["DEBUG_REWARD"], service.env["ROLLOUT_IDX"]) == ("True", "0")
    assert service.constraints == ("node.labels.trackday.role==trainer",)
    assert service.labels["trackday.job"] == "evaluation"


def test_cloudwatch_logs_go_to_the_stacks_group():
    """The nodes' role may write to the group the stack made, not create one."""
    chosen = settings(cloudwatch={"enabled": True, "log_stream_prefix": "me-"})
    trainer, _ = training_services(chosen, Site(BUCKET, log_group="trackday-aws-logs-1"))
    assert trainer.log_driver == "awslogs"
    assert trainer.log_options == {
        "awslogs-group": "trackday-aws-logs-1",
        "awslogs-region": "eu-west-1",
        "tag": "me-{{.Name}}",
    }
    with pytest.raises(
        ValueError,
        match=r"cloudwatch\.enabled needs the stack's CloudWatch "
        r"Logs group: an aws stack with trackday:aws\.logging: true",
    ):
        training_services(chosen, SITE)
    assert training_services(settings(), SITE)[0].log_driver is None


def test_gpu_nodes_reserve_a_gpu_per_task_and_pass_what_drfc_passes():
    """Swarm keeps a DonkeyCar job off a GPU a run holds; DRfC's environment (its
    docker-compose-training.yml and docker-compose-aws.yml) reaches the containers."""
    chosen = settings(
        workers=3,
        simulator={
            "gazeboArgs": "--verbose",
            "sagemakerCudaDevices": "0",
            "robomakerCudaDevices": "1",
        },
    )
    trainer, workers = training_services(chosen, Site(BUCKET, gpu_nodes=True, aws=True))
    assert (trainer.gpus, workers.gpus, workers.replicas) == (1, 1, 3)
    assert trainer.env["CUDA_VISIBLE_DEVICES"] == "0" and workers.env["CUDA_VISIBLE_DEVICES"] == "1"
    assert workers.env["GAZEBO_ARGS"] == "--verbose"
    for service in (trainer, workers):
        assert service.env["AWS_METADATA_SERVICE_TIMEOUT"] == "3"
        assert service.env["AWS_METADATA_SERVICE_NUM_ATTEMPTS"] == "5"
    template = create_service_args(workers, {})["task_template"]
    assert template["Resources"]["Reservations"]["GenericResources"] == [
        {"DiscreteResourceSpec": {"Kind": GPU_RESOURCE, "Value": 1}}
    ]
    # one node: the workers share the node's first GPU; a CPU image reserves none
    one = training_services(chosen, Site(BUCKET, gpu_nodes=True, single_node=True))
    assert [s.gpus for s in one] == [1, 0]
    cpu = settings(simulator={"tag": "6.0.4-cpu"})
    assert [s.gpus for s in training_services(cpu, Site(BUCKET, gpu_nodes=True))] == [0, 0]
    # this machine's engine advertises no GPUs; not AWS: no metadata settings, no devices
    trainer, workers = training_services(settings(), SITE)
    assert (trainer.gpus, workers.gpus, workers.env["GAZEBO_ARGS"]) == (0, 0, "")
    assert not {"CUDA_VISIBLE_DEVICES", "AWS_METADATA_SERVICE_TIMEOUT"} & set(trainer.env)


@pytest.mark.parametrize(
    ("single_node", "gpu_per_worker", "reserved"),
    [(False, None, 1), (True, None, 0), (True, True, 1), (False, False, 0)],
)
def test_workers_reserve_a_gpu_of_their_own_or_share_the_first_only(
    single_node, gpu_per_worker, reserved
):
    """`deepracer.gpuPerWorker` (unset: own GPUs on multi-node stacks). A worker without a
    Swarm GPU names the first GPU in NVIDIA_VISIBLE_DEVICES: the NVIDIA runtime would read
    the image's `all` otherwise, every GPU of the node (DRfC's "greedy" workers)."""
    site = Site(BUCKET, gpu_nodes=True, single_node=single_node)
    chosen = settings(workers=2, gpu_per_worker=gpu_per_worker)
    trainer, workers = training_services(chosen, site)
    (evaluation,) = evaluation_services(chosen, site)
    for simulation in (workers, evaluation):
        assert simulation.gpus == reserved
        assert simulation.env.get("NVIDIA_VISIBLE_DEVICES") == (None if reserved else "0")
    # the trainer's SageMaker container trains on the GPU Swarm reserved for the trainer
    assert trainer.gpus == 1
    assert trainer.args == (f"{TRAINER_ON_ITS_GPU} && {TRAINER_COMMAND}",)
    assert "NVIDIA_VISIBLE_DEVICES" not in trainer.env


def test_this_machines_engine_has_no_gpu_placement():
    trainer, workers = training_services(settings(gpu_per_worker=True), SITE)
    assert trainer.args == (TRAINER_COMMAND,) and workers.gpus == 0
    assert "NVIDIA_VISIBLE_DEVICES" not in workers.env


def test_docker_sdk_arguments():
    trainer, _ = training_services(settings(), SITE)
    args = create_service_args(trainer, {})
    container = args["task_template"]["ContainerSpec"]
    assert args["name"] == trainer.name and args["mode"] == {"replicated": {"Replicas": 1}}
    assert (container["Image"], container["Args"]) == (trainer.image, [trainer.args[0]])
    assert {
        "Type": "bind",
        "Source": "/var/run/docker.sock",
        "Target": "/var/run/docker.sock",
        "ReadOnly": False,
    } in container["Mounts"]
    assert args["task_template"]["Placement"]["Constraints"] == [
        "node.labels.trackday.role==trainer"
    ]
    assert container["Dir"] == "/opt/ml/code/"
    trainer, _ = training_services(settings(run_id=4), Site(BUCKET, with_credentials=True))
    container = create_service_args(trainer, {"trackday-dr-4-s3": "id4"})["task_template"][
        "ContainerSpec"
    ]
    assert container["Secrets"] == [
        {
            "SecretID": "id4",
            "SecretName": "trackday-dr-4-s3",
            "File": {"Name": "s3-credentials", "UID": "0", "GID": "0", "Mode": 292},
        }
    ]


def test_run_services_picks_the_job():
    assert [s.name for s in run_services(settings(), SITE, "evaluation")] == [
        "trackday-dr-eval-0-simulation"
    ]
    assert len(run_services(settings(), SITE, "training")) == 2
    with pytest.raises(ValueError, match="job 'race' is not one of training, evaluation"):
        run_services(settings(), SITE, "race")
