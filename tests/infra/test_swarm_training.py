"""The Swarm training job `trackday donkey submit` creates from an aws or azure stack's outputs."""

from __future__ import annotations

import pytest

from tests.infra.stacks import run_stack, shipped_values
from trackday import swarm_jobs
from trackday.run_options import RunOptions
from trackday.stack import StackError, swarm_outputs
from trackday.swarm_training import training_job

RUN = "20260101-000000-abc123"


def _outputs(stack: str) -> dict:
    """A stack's outputs as `pulumi stack output --json --show-secrets` prints them."""
    return {
        name: out.value for name, out in run_stack(stack, shipped_values(stack)).outputs.items()
    }


@pytest.fixture(scope="module")
def aws() -> dict:
    return _outputs("aws")


@pytest.fixture(scope="module")
def azure() -> dict:
    return _outputs("azure")


def test_aws_job_uses_the_node_identity_and_no_key(aws):
    outputs = swarm_outputs("aws", aws)
    data = f"{outputs.bucket_url}/tubs/0123456789abcdef-tub.tar.zst"
    job, credentials = training_job(outputs, data, RUN)
    assert credentials is None
    assert job.image == "trackday-donkeycar:5.3.0"
    assert job.env == {"AWS_DEFAULT_REGION": "us-east-1"}
    assert job.gpus == 1
    assert job.role == "trainer"
    assert list(job.args) == [
        "--data", data, "--output", f"{outputs.bucket_url}/runs/donkeycar", "--run-id", RUN,
        "--require-gpu",  # a GPU job; no --model-type: the car config's decides
    ]  # fmt: skip
    spec = swarm_jobs.service_spec(job)
    assert spec["task_template"]["Placement"]["Constraints"] == [
        "node.labels.trackday.role==trainer"
    ]


def test_azure_job_reaches_blob_through_the_gateway_with_its_keys(azure):
    outputs = swarm_outputs("azure", azure)
    job, credentials = training_job(outputs, "az://trackday/tubs/x.tar.zst", RUN)
    assert job.args[:2] == ("--data", "s3://trackday/tubs/x.tar.zst")
    assert job.args[3] == "s3://trackday/runs/donkeycar"
    assert job.env == {"AWS_ENDPOINT_URL": azure["s3Endpoint"], "AWS_DEFAULT_REGION": "us-east-1"}
    assert credentials == swarm_jobs.S3Credentials(
        azure["s3AccessKeyId"], azure["s3SecretAccessKey"]
    )
    spec = swarm_jobs.service_spec(job, "secret-id")
    env = spec["task_template"]["ContainerSpec"]["Env"]
    assert not any(azure["s3SecretAccessKey"] in e for e in env)  # a Swarm secret file instead


def test_archive_outside_the_bucket_is_refused(azure):
    with pytest.raises(StackError, match=r"az://other/x.tar.zst is not in the stack's bucket"):
        training_job(swarm_outputs("azure", azure), "az://other/x.tar.zst", RUN)


def test_missing_or_wrong_outputs_are_named(aws):
    partial = {k: v for k, v in aws.items() if k != "sshPrivateKey"}
    with pytest.raises(StackError, match=r"stack aws: output sshPrivateKey: Field required"):
        swarm_outputs("aws", partial)
    with pytest.raises(StackError, match=r"stack gcp is not a swarm stack \(target 'gcp'\)"):
        swarm_outputs("gcp", {**aws, "target": "gcp"})


def test_azure_outputs_without_the_gateway_keys_are_refused(azure):
    no_keys = {k: v for k, v in azure.items() if k != "s3SecretAccessKey"}
    with pytest.raises(StackError, match=r"lack s3Endpoint or the gateway keys"):
        training_job(swarm_outputs("azure", no_keys), "az://trackday/x", RUN)


def test_transfer_model_is_passed_as_the_node_names_it(azure):
    """`submit --transfer/--myconfig`: their URLs in the bucket, as the job reaches them."""
    outputs = swarm_outputs("azure", azure)
    run = f"trackday/runs/donkeycar/{RUN}"
    options = RunOptions(transfer=f"az://{run}/transfer/pilot.keras", myconfig=f"az://{run}/m.py")
    job, _ = training_job(outputs, "az://trackday/tubs/x.tar.zst", RUN, options)
    assert job.args[job.args.index("--transfer") + 1] == f"s3://{run}/transfer/pilot.keras"
    assert job.args[job.args.index("--myconfig") + 1] == f"s3://{run}/m.py"
    with pytest.raises(StackError, match=r"az://other/pilot.h5 is not in the stack's bucket"):
        training_job(outputs, "az://trackday/x", RUN, RunOptions(transfer="az://other/pilot.h5"))
