"""Where `trackday dr` and the program place a run, from a stack's outputs."""

import pytest

from infra.workloads.run_target import ManagerAccess, RunTargetError, run_target

LOCAL = {"target": "local", "bucketUrl": "s3://trackday", "s3Endpoint": "http://127.0.0.1:9000",
         "s3EndpointInNetwork": "http://s3:9000", "s3AccessKeyId": "K",
         "s3SecretAccessKey": "S", "s3Container": "trackday-dev-s3-server-1a2b"}
SWARM = {"target": "aws", "bucketUrl": "s3://runs", "nodeBucketUrl": "s3://runs",
         "s3Endpoint": "", "region": "eu-west-1", "managerAddress": "203.0.113.7",
         "sshUser": "ubuntu", "sshPrivateKey": "KEY", "managerHostKey": "HOST", "nodeCount": 3}


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
    azure = run_target("azure", {**SWARM, "target": "azure", "bucketUrl": "az://runs",
                                 "nodeBucketUrl": "s3://runs", "s3Endpoint": "http://10.0.1.4:9000",
                                 "s3AccessKeyId": "K", "s3SecretAccessKey": "S", "nodeCount": 1,
                                 "storageAccount": "trackdayab12"})
    assert azure.bucket_url == "az://runs" and azure.bucket.name == "runs"
    assert azure.bucket.endpoint_url == "http://10.0.1.4:9000" and azure.single_node
    assert azure.credentials == ("K", "S")
    assert azure.storage_env == {"AZURE_STORAGE_ACCOUNT_NAME": "trackdayab12"}


@pytest.mark.parametrize(("outputs", "message"), [
    ({"target": "gcp", "bucketUrl": "gs://b"}, "stack s (gcp) has no S3 bucket (bucketUrl gs://b)"),
    ({**LOCAL, "s3EndpointInNetwork": None} | {"bucketUrl": 3}, "missing or not known yet"),
    ({k: v for k, v in LOCAL.items() if k != "s3AccessKeyId"}, "no output 's3AccessKeyId'"),
    ({k: v for k, v in LOCAL.items() if k != "s3Container"}, "no output 's3Container'"),
    ({k: v for k, v in SWARM.items() if k != "sshUser"}, "no output 'sshUser': run `pulumi up`"),
])
def test_what_is_missing_is_named(outputs, message):
    with pytest.raises(RunTargetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_target("s", outputs)
