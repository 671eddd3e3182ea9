"""bucket_io takes `endpoint=` like the rest of training.storage: with a record, every
operation reaches that server, whatever the environment names."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import S3Server, serve_s3
from tests.training.test_storage import use_env
from training import storage
from training.deepracer import bucket_io

BUCKET = "runs"  # the same name on both servers


@pytest.fixture(scope="module")
def two_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S3Server, S3Server]]:
    with (
        serve_s3(tmp_path_factory.mktemp("s3-env")) as named_by_env,
        serve_s3(tmp_path_factory.mktemp("s3-given")) as given,
    ):
        for server in (named_by_env, given):
            server.create_bucket(BUCKET)
        yield named_by_env, given


def _endpoint(server: S3Server) -> storage.Endpoint:
    return storage.Endpoint(
        s3=storage.S3Endpoint(
            url=server.endpoint, key_id=server.key, secret=server.secret, region="us-east-1"
        )
    )


def _keys(server: S3Server, prefix: str) -> list[str]:
    """What the server holds under `prefix/`, read through boto3 (not training.storage)."""
    listed = server.client().list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_every_operation_reaches_the_endpoint_given_not_the_environments(
    two_servers: tuple[S3Server, S3Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    named_by_env, given = two_servers
    use_env(monkeypatch, named_by_env.env())
    endpoint = _endpoint(given)
    url = f"s3://{BUCKET}"

    written = bucket_io.write_objects(
        url, {"m/a.json": b'{"n": 1}', "m/b.txt": b"b"}, endpoint=endpoint
    )
    assert written == [f"{url}/m/a.json", f"{url}/m/b.txt"]
    assert _keys(given, "m") == ["m/a.json", "m/b.txt"]
    assert _keys(named_by_env, "m") == []

    named_by_env.put(BUCKET, "m/only-env.txt", b"x")  # the environment's server differs
    assert bucket_io.list_keys(url, "m", endpoint=endpoint) == ["m/a.json", "m/b.txt"]
    assert bucket_io.list_keys(url, "m") == ["m/only-env.txt"]  # without one: the environment
    assert bucket_io.read_object(f"{url}/m/b.txt", endpoint=endpoint) == b"b"
    assert bucket_io.read_object(f"{url}/m/b.txt") is None
    assert bucket_io.read_json(f"{url}/m/a.json", endpoint=endpoint) == {"n": 1}

    with pytest.raises(bucket_io.PrefixTaken, match="2 objects"):
        bucket_io.claim_prefix(url, "m", False, "wipe", endpoint=endpoint)
    bucket_io.claim_prefix(url, "m", True, "wipe", endpoint=endpoint)
    assert _keys(given, "m") == []
    assert _keys(named_by_env, "m") == ["m/only-env.txt"]

    bucket_io.write_objects(url, {"n/c": b"c"}, endpoint=endpoint)
    assert bucket_io.delete_prefix(url, "n", endpoint=endpoint) == 1
    assert _keys(given, "n") == []
