"""DonkeyCar training as a one-shot Swarm job on an aws or azure stack's manager (pure).

The job runs the trainer image the stack built on the manager, on the node labelled
`trackday.role=trainer`, with the host's network. It reaches the bucket the way the node does:
on aws with the node's instance profile (no key anywhere), on azure through the S3 gateway
on the manager's private address, with the gateway's keys as a Swarm secret file.
"""

from __future__ import annotations

from dataclasses import replace

from trackday import runs
from trackday.run_options import RunOptions
from trackday.stack import StackError, SwarmOutputs
from trackday.swarm_jobs import S3Credentials, SwarmJob

# The S3 gateway accepts any region name; botocore needs one.
GATEWAY_REGION = "us-east-1"


def node_url(outputs: SwarmOutputs, url: str) -> str:
    """A URL under the stack's bucket as this machine names it, as the nodes name it."""
    if not url.startswith(outputs.bucket_url):
        raise StackError(f"{url} is not in the stack's bucket {outputs.bucket_url}")
    return outputs.node_bucket_url + url[len(outputs.bucket_url) :]


def training_job(
    outputs: SwarmOutputs, data_url: str, run_id: str, options: RunOptions | None = None
) -> tuple[SwarmJob, S3Credentials | None]:
    """The Swarm job for one run of the archive at `data_url` (this machine's URL of it)."""
    training = outputs.training
    options = options or RunOptions()
    if options.transfer:
        options = replace(options, transfer=node_url(outputs, options.transfer))
    if options.myconfig:
        options = replace(options, myconfig=node_url(outputs, options.myconfig))
    args = options.trainer_args(
        node_url(outputs, data_url),
        runs.runs_url(outputs.node_bucket_url),
        run_id,
        training.model_type,
        training.overrides,
        training.gpus,
    )
    env: dict[str, str] = {}
    credentials = None
    if outputs.target == "azure":
        if not (outputs.s3_endpoint and outputs.s3_access_key_id and outputs.s3_secret_access_key):
            raise StackError(
                f"the azure stack's outputs lack {outputs.key('s3_endpoint')} or the gateway "
                "keys: pass them with --show-secrets, or run `pulumi up` for the stack"
            )
        env = {"AWS_ENDPOINT_URL": outputs.s3_endpoint, "AWS_DEFAULT_REGION": GATEWAY_REGION}
        credentials = S3Credentials(outputs.s3_access_key_id, outputs.s3_secret_access_key)
    elif outputs.region:
        env = {"AWS_DEFAULT_REGION": outputs.region}
    job = SwarmJob(
        name=f"trackday-donkeycar-{run_id}",
        image=outputs.image,
        args=tuple(args),
        env=env,
        gpus=training.gpus,
    )
    return job, credentials
