"""The S3 gateway for real: the exact `rclone serve s3` command line the manager's unit runs,
here in front of Azurite, driven by boto3.

Only the credential differs from the node: Azurite's account key and endpoint instead of the
managed identity (Azurite has no IMDS). The command line, the remote's definition and the
access-key variable are the ones `infra.gateway` renders into the unit and its env files.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
from boto3.s3.transfer import TransferConfig

from infra import gateway
from tests.servers import AzuriteServer, _running, free_port, unique_name, venv_tool
from training import storage

ACCESS_KEY = "trackdaygatewaykey01"
SECRET_KEY = "Zq8mX2vR7tLw4NpK9sBc3HdJ6fYa1GeU5oQi0VxT"
CLIENT_ID = "0f9c2a5e-3b1d-4c7e-9a8f-2d6b1e4c7a90"
KEYS_URL = "https://trackday-dev-0a1b2c.vault.azure.net/secrets/gateway-keys"


@dataclass(frozen=True)
class Gateway:
    endpoint: str
    argv: list[str]
    azurite: AzuriteServer

    def client(self, key: str = ACCESS_KEY, secret: str = SECRET_KEY):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name="us-east-1",
        )


def read_env_file(text: str) -> dict[str, str]:
    """What `docker run --env-file` makes of a file: NAME=value lines, taken literally."""
    return dict(line.split("=", 1) for line in text.splitlines() if line)


@pytest.fixture(scope="module")
def running_gateway(azurite_server: AzuriteServer, tmp_path_factory) -> Iterator[Gateway]:
    listen = f"127.0.0.1:{free_port()}"
    argv = [str(venv_tool("rclone")), *gateway.command_args(listen)]
    azurite_auth = {"key": azurite_server.key, "endpoint": azurite_server.blob_endpoint}
    env = {
        **gateway.backend_env(azurite_server.account, azurite_auth),
        **read_env_file(gateway.env_file(gateway.keys_env(ACCESS_KEY, SECRET_KEY))),
    }
    log = tmp_path_factory.mktemp("gateway") / "rclone.log"
    with _running(argv, f"http://{listen}/", log, env):
        yield Gateway(endpoint=f"http://{listen}", argv=argv, azurite=azurite_server)


@pytest.fixture
def bucket(running_gateway: Gateway) -> str:
    """A fresh bucket, made through the gateway (so, a blob container)."""
    name = unique_name()
    running_gateway.client().create_bucket(Bucket=name)
    return name


def wait_for_directory_cache() -> None:
    """What is written beside the gateway shows once its directory cache has expired."""
    time.sleep(gateway.DIR_CACHE_SECONDS + 1)


def test_the_command_line_is_the_one_in_the_unit(running_gateway: Gateway) -> None:
    settings = gateway.GatewaySettings("trackdaydata", CLIENT_ID, KEYS_URL)
    exec_start = next(
        line for line in gateway.unit(settings).splitlines() if line.startswith("ExecStart=")
    )
    tested = " ".join(running_gateway.argv[1:]).replace(
        running_gateway.endpoint.removeprefix("http://"), gateway.NODE_LISTEN_ADDRESS
    )
    assert exec_start.endswith(f" {settings.image} {tested}")
    # The unit's only environment differences are the credential options.
    node_env = read_env_file(gateway.settings_file(settings))
    assert node_env["RCLONE_CONFIG_BLOB_TYPE"] == "azureblob"
    assert node_env["RCLONE_CONFIG_BLOB_USE_MSI"] == "true"
    assert node_env["RCLONE_CONFIG_BLOB_MSI_CLIENT_ID"] == CLIENT_ID
    assert "KEY" not in " ".join(node_env) and SECRET_KEY not in gateway.unit(settings)


def test_blob_containers_are_buckets(running_gateway: Gateway, bucket: str) -> None:
    assert bucket in [c.name for c in running_gateway.azurite.client().list_containers()]
    beside = running_gateway.azurite.create_container(unique_name())
    wait_for_directory_cache()
    names = [entry["Name"] for entry in running_gateway.client().list_buckets()["Buckets"]]
    assert {bucket, beside} <= set(names)


def test_put_get_overwrite_delete_and_missing_key(running_gateway: Gateway, bucket: str) -> None:
    s3 = running_gateway.client()
    put = s3.put_object(Bucket=bucket, Key="models/run-1/model.tflite", Body=b"first")
    assert put["ETag"] == f'"{hashlib.md5(b"first").hexdigest()}"'
    blob = running_gateway.azurite.client().get_blob_client(bucket, "models/run-1/model.tflite")
    assert blob.download_blob().readall() == b"first"  # it really is in Blob storage
    s3.put_object(Bucket=bucket, Key="models/run-1/model.tflite", Body=b"second, longer")
    got = s3.get_object(Bucket=bucket, Key="models/run-1/model.tflite")
    assert got["Body"].read() == b"second, longer"
    assert got["ContentLength"] == len(b"second, longer")
    s3.delete_object(Bucket=bucket, Key="models/run-1/model.tflite")
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        s3.get_object(Bucket=bucket, Key="models/run-1/model.tflite")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"
    with pytest.raises(botocore.exceptions.ClientError) as never:
        s3.head_object(Bucket=bucket, Key="never/written")
    assert never.value.response["Error"]["Code"] in {"404", "NoSuchKey"}


def test_listing_with_prefixes_and_delimiter(running_gateway: Gateway, bucket: str) -> None:
    for key in ("tubs/a.tar.zst", "models/r1/model.h5", "models/r1/model.tflite", "models/r2/x"):
        running_gateway.azurite.put(bucket, key, key.encode())  # written beside the gateway
    wait_for_directory_cache()
    s3 = running_gateway.client()
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert sorted(p["Prefix"] for p in top["CommonPrefixes"]) == ["models/", "tubs/"]
    runs = s3.list_objects_v2(Bucket=bucket, Prefix="models/", Delimiter="/")
    assert sorted(p["Prefix"] for p in runs["CommonPrefixes"]) == ["models/r1/", "models/r2/"]
    r1 = s3.list_objects_v2(Bucket=bucket, Prefix="models/r1/")
    assert [o["Key"] for o in r1["Contents"]] == ["models/r1/model.h5", "models/r1/model.tflite"]
    assert [o["Size"] for o in r1["Contents"]] == [18, 22]


def test_multipart_upload_round_trips(running_gateway: Gateway, bucket: str) -> None:
    data = os.urandom(11 * 1024 * 1024 + 7)
    config = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024**2)
    s3 = running_gateway.client()
    s3.upload_fileobj(io.BytesIO(data), bucket, "tubs/big.tar.zst", Config=config)
    head = s3.head_object(Bucket=bucket, Key="tubs/big.tar.zst")
    assert head["ContentLength"] == len(data)
    print("ETAG", head["ETag"])
    back = io.BytesIO()
    s3.download_fileobj(bucket, "tubs/big.tar.zst", back)
    assert hashlib.sha256(back.getvalue()).digest() == hashlib.sha256(data).digest()
    blob = running_gateway.azurite.client().get_blob_client(bucket, "tubs/big.tar.zst")
    assert blob.get_blob_properties().size == len(data)


def test_wrong_keys_are_refused(running_gateway: Gateway, bucket: str) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        running_gateway.client(secret="x" * 40).list_objects_v2(Bucket=bucket)
    assert refused.value.response["Error"]["Code"] in {"SignatureDoesNotMatch", "AccessDenied"}
    with pytest.raises(botocore.exceptions.ClientError):
        running_gateway.client(key="nobody00000000000000").list_objects_v2(Bucket=bucket)


def test_keys_file_and_settings_are_well_formed() -> None:
    keys = gateway.env_file(gateway.keys_env(ACCESS_KEY, SECRET_KEY))
    assert keys == f'RCLONE_AUTH_KEY="{ACCESS_KEY},{SECRET_KEY}"\n'
    assert gateway.endpoint("10.0.1.4") == "http://10.0.1.4:9000"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: gateway.keys_env("short", SECRET_KEY), "gateway access key id must be 16"),
        (lambda: gateway.keys_env(ACCESS_KEY, "has,comma" * 3), "gateway secret access key must"),
        (
            lambda: gateway.GatewaySettings("Bad_Account", CLIENT_ID, KEYS_URL),
            "storage account 'Bad_Acc",
        ),
        (
            lambda: gateway.GatewaySettings("trackdaydata", "nope", KEYS_URL),
            "identity client id 'nope'",
        ),
        (
            lambda: gateway.GatewaySettings("trackdaydata", CLIENT_ID, KEYS_URL, image="x y"),
            "gateway image 'x y' is not an image reference",
        ),
        (lambda: gateway.env_file({"A": "two\nlines"}), "'A' must be on one line"),
        (
            lambda: gateway.GatewaySettings("trackdaydata", CLIENT_ID, "https://x.example/k"),
            "is not a Key Vault secret URL",
        ),
    ],
)
def test_bad_gateway_inputs_are_refused(call, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_unit_listens_on_the_private_address_only() -> None:
    unit = gateway.unit(gateway.GatewaySettings("trackdaydata", CLIENT_ID, KEYS_URL))
    assert "--addr ${TRACKDAY_PRIVATE_IP}:9000 " in unit
    assert "EnvironmentFile=/run/trackday/node.env" in unit
    assert f"ConditionPathExists={gateway.KEYS_FILE}" in unit
    assert not Path(gateway.KEYS_FILE).is_relative_to("/run")  # survives reboots


@pytest.fixture
def gateway_env(running_gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    """training.storage pointed at the gateway as a trainer on Azure is."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", running_gateway.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def test_training_storage_round_trips_through_the_gateway(
    gateway_env: None, running_gateway: Gateway, bucket: str, tmp_path: Path
) -> None:
    archive = tmp_path / "tub.tar.zst"
    archive.write_bytes(os.urandom(3 * 1024 * 1024 + 11))
    url = f"s3://{bucket}/tubs/tub.tar.zst"
    digest = storage.upload(archive, url, progress=False)
    assert digest == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert storage.checksum(url) == digest
    back = tmp_path / "back.tar.zst"
    assert storage.download(url, back, progress=False) == digest
    assert back.read_bytes() == archive.read_bytes()
    # What the gateway stored is a plain blob, readable with Azure's own API.
    blob = running_gateway.azurite.client().get_blob_client(bucket, "tubs/tub.tar.zst")
    assert hashlib.sha256(blob.download_blob().readall()).hexdigest() == digest


def test_training_storage_lists_overwrites_and_misses(
    gateway_env: None, bucket: str, tmp_path: Path
) -> None:
    storage.write_text(f"s3://{bucket}/runs/r1/state.json", '{"state": "running"}')
    storage.write_text(f"s3://{bucket}/runs/r1/state.json", '{"state": "done"}')
    assert storage.read_text(f"s3://{bucket}/runs/r1/state.json") == '{"state": "done"}'
    storage.write_text(f"s3://{bucket}/runs/r2/state.json", "{}")
    storage.write_text(f"s3://{bucket}/tubs/t.txt", "t")
    assert sorted(storage.list_files(f"s3://{bucket}/runs/")) == [
        f"s3://{bucket}/runs/r1/state.json",
        f"s3://{bucket}/runs/r2/state.json",
    ]
    assert storage.exists(f"s3://{bucket}/runs/r1/state.json")
    assert not storage.exists(f"s3://{bucket}/runs/r9/state.json")
    with pytest.raises(storage.StorageError, match=f"s3://{bucket}/runs/r9/model.h5"):
        storage.download(f"s3://{bucket}/runs/r9/model.h5", tmp_path / "m.h5", progress=False)


def test_training_storage_multipart_upload_through_the_gateway(
    gateway_env: None, running_gateway: Gateway, bucket: str, tmp_path: Path
) -> None:
    """s3fs switches to a multipart upload above twice its 50 MiB part size."""
    archive = tmp_path / "big.tar.zst"
    with open(archive, "wb") as out:
        for _ in range(101):
            out.write(os.urandom(1024 * 1024))
    url = f"s3://{bucket}/tubs/big.tar.zst"
    digest = storage.upload(archive, url, progress=False)
    assert digest == hashlib.sha256(archive.read_bytes()).hexdigest()
    head = running_gateway.client().head_object(Bucket=bucket, Key="tubs/big.tar.zst")
    assert head["ContentLength"] == 101 * 1024 * 1024
