"""Where `trackday dr` and the program place a run, from a stack's outputs."""

import pytest

from infra.workloads.run_target import (
    ManagerAccess,
    RunTargetError,
    placement_problem,
    run_target,
)

LOCAL = {
    "target": "local",
    "bucketUrl": "s3://trackday",
    "s3Endpoint": "http://127.0.0.1:9000",
    "s3EndpointInNetwork": "http://s3:9000",
    "s3AccessKeyId": "K",
    "s3SecretAccessKey": "S",
    "s3Container": "trackday-dev-s3-server-1a2b",
}
SWARM = {
    "target": "aws",
    "bucketUrl": "s3://runs",
    "nodeBucketUrl": "s3://runs",
    "s3Endpoint": "",
    "region": "eu-west-1",
    "managerAddress": "203.0.113.7",
    "sshUser": "ubuntu",
    "sshPrivateKey": "KEY",
    "managerHostKey": "HOST",
    "nodeCount": 3,
}


def test_local_target_runs_on_this_engine_with_the_keys():
    placed = run_target("dev", LOCAL)
    assert placed.manager is None and placed.single_node
    assert (placed.bucket.name, placed.bucket.endpoint_url) == ("trackday", "http://s3:9000")
    assert placed.bucket_url == "s3://trackday" and placed.credentials == ("K", "S")
    assert placed.storage_env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert placed.s3_container == "trackday-dev-s3-server-1a2b"


def test_swarm_targets_reach_the_manager_over_ssh():
    placed = run_target("aws", SWARM)
    assert placed.manager == ManagerAccess("203.0.113.7", "ubuntu", "KEY", "HOST")
    assert not placed.single_node
    assert (placed.bucket.region, placed.bucket.endpoint_url) == ("eu-west-1", None)
    assert placed.credentials is None and placed.storage_env == {}
    assert placed.s3_container is None
    azure = run_target(
        "azure",
        {
            **SWARM,
            "target": "azure",
            "bucketUrl": "az://runs",
            "nodeBucketUrl": "s3://runs",
            "s3Endpoint": "http://10.0.1.4:9000",
            "s3AccessKeyId": "K",
            "s3SecretAccessKey": "S",
            "nodeCount": 1,
            "storageAccount": "trackdayab12",
        },
    )
    assert azure.bucket_url == "az://runs" and azure.bucket.name == "runs"
    assert azure.bucket.endpoint_url == "http://10.0.1.4:9000" and azure.single_node
    assert azure.credentials == ("K", "S")
    assert azure.storage_env == {"AZURE_STORAGE_ACCOUNT_NAME": "trackdayab12"}


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        (
            {"target": "gcp", "bucketUrl": "gs://b"},
            "stack s (gcp) has no S3 bucket (bucketUrl gs://b)",
        ),
        ({**LOCAL, "s3EndpointInNetwork": None} | {"bucketUrl": 3}, "missing or not known yet"),
        ({k: v for k, v in LOCAL.items() if k != "s3AccessKeyId"}, "no output 's3AccessKeyId'"),
        ({k: v for k, v in LOCAL.items() if k != "s3Container"}, "no output 's3Container'"),
        (
            {k: v for k, v in SWARM.items() if k != "sshUser"},
            "no output 'sshUser': run `pulumi up`",
        ),
    ],
)
def test_what_is_missing_is_named(outputs, message):
    with pytest.raises(RunTargetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_target("s", outputs)


def test_the_services_learn_the_site_from_the_stack():
    """aws: the stack's log group (output `logGroup`), the metadata service settings, and
    GPUs reserved on the nodes that advertise them; the local engine advertises none."""
    aws = run_target("aws", {**SWARM, "logGroup": "trackday-aws-logs-1"}).site
    assert (aws.log_group, aws.aws, aws.gpu_nodes) == ("trackday-aws-logs-1", True, True)
    local = run_target("dev", LOCAL).site
    assert (local.log_group, local.aws, local.gpu_nodes) == (None, False, False)
    assert local.with_credentials and local.single_node
    assert not run_target("azure", {**SWARM, "target": "azure"}).site.aws


def node(labels: dict, *resources: dict, state: str = "ready") -> dict:
    return {
        "Status": {"State": state},
        "Spec": {"Availability": "active", "Labels": labels},
        "Description": {"Resources": {"GenericResources": list(resources)}},
    }


def gpu(uuid: str) -> dict:
    return {"NamedResourceSpec": {"Kind": "GPU", "Value": uuid}}


SIMULATION = "node.labels.trackday.role==simulation"


def test_reserved_gpus_must_exist_on_the_nodes_before_anything_starts():
    nodes = [
        node({"trackday.role": "simulation"}, gpu("GPU-a")),
        node({"trackday.role": "simulation"}, gpu("GPU-b"), gpu("GPU-c")),
        node({"trackday.role": "simulation"}, gpu("GPU-d"), state="down"),
        node({"trackday.role": "trainer"}, {"DiscreteResourceSpec": {"Kind": "GPU", "Value": 2}}),
    ]
    assert placement_problem(nodes, [SIMULATION], False, {SIMULATION: 3}) is None
    assert placement_problem(nodes, [SIMULATION], False, {SIMULATION: 4}) == (
        "the tasks on nodes labelled trackday.role=simulation reserve 4 GPUs (one each), the "
        "ready ones advertise 3: add GPU nodes (nodes.count), fewer workers, or let them share a "
        "GPU (deepracer.gpuPerWorker: false)"
    )
    trainer = "node.labels.trackday.role==trainer"
    assert placement_problem(nodes, [trainer], False, {trainer: 2}) is None
    assert placement_problem(nodes, [trainer], False, {trainer: 3}) is not None
