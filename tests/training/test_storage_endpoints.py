"""training.storage with explicit endpoints: two S3 servers (each `rclone serve s3` with its
own keys) used at once, streamed copies between them, and progress told by callback."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.servers import S3Server, serve_s3
from tests.training.test_storage import STORAGE_ENV, payload, use_env
from training import storage
from training.storage.reading import CHUNK_SIZE, PREFETCH_CHUNKS

# What a streamed copy may hold at once: the chunks read ahead plus the one being written,
# the writer's part buffer and the copy it sends, and the read-back's look-ahead (whose
# chunks are let go as they are hashed).
COPY_MEMORY_BOUND = (2 * PREFETCH_CHUNKS + 3) * CHUNK_SIZE


@pytest.fixture(scope="module")
def other_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A second S3 server, with keys of its own."""
    with serve_s3(tmp_path_factory.mktemp("s3-other")) as server:
        yield server


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing in the environment: every endpoint comes from the record passed."""
    use_env(monkeypatch, {})


def endpoint_of(server: S3Server) -> storage.Endpoint:
    return storage.Endpoint(
        s3=storage.S3Endpoint(
            url=server.endpoint, key_id=server.key, secret=server.secret, region="us-east-1"
        )
    )


def stored(server: S3Server, bucket: str, key: str) -> bytes | None:
    """An object read through boto3 (not training.storage), None when there is none."""
    try:
        return server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise


def sha256_stored(server: S3Server, bucket: str, key: str) -> str:
    body = server.client().get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    for piece in iter(lambda: body.read(1 << 20), b""):
        digest.update(piece)
    return digest.hexdigest()


def run_side_by_side(work, calls: list[tuple], failures: list[BaseException]) -> None:
    """`work(*args)` for each of `calls`, each in its own thread, all joined; none failed."""
    threads = [threading.Thread(target=work, args=args) for args in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures


def test_two_endpoints_at_once_from_two_threads(s3_server, other_s3, no_env, tmp_path: Path):
    """The same bucket name on two servers with different keys, written and read by two
    threads in lock step: each reaches its own server only."""
    bucket = "shared"
    for server in (s3_server, other_s3):
        if bucket not in [b["Name"] for b in server.client().list_buckets()["Buckets"]]:
            server.create_bucket(bucket)
    rounds, step = 5, threading.Barrier(2, timeout=60)
    failures: list[BaseException] = []

    def work(server: S3Server, name: str) -> None:
        endpoint = endpoint_of(server)
        try:
            for i in range(rounds):
                source = tmp_path / f"{name}-{i}.bin"
                source.write_bytes(f"{name} {i}".encode())
                url = f"s3://{bucket}/{name}/{i}.bin"
                step.wait()  # both threads inside storage calls at the same time
                digest = storage.upload(source, url, endpoint=endpoint)
                storage.write_text(f"s3://{bucket}/last", name, endpoint=endpoint)
                step.wait()
                assert storage.checksum(url, endpoint=endpoint) == digest
                assert storage.read_text(f"s3://{bucket}/last", endpoint=endpoint) == name
                assert storage.list_files(f"s3://{bucket}/{name}", endpoint=endpoint) == [
                    f"s3://{bucket}/{name}/{n}.bin{suffix}"
                    for n in range(i + 1)
                    for suffix in ("", ".sha256")
                ]
        except BaseException as error:
            failures.append(error)
            step.abort()

    run_side_by_side(work, [(s3_server, "one"), (other_s3, "two")], failures)
    assert stored(s3_server, bucket, "last") == b"one"
    assert stored(other_s3, bucket, "last") == b"two"
    assert stored(s3_server, bucket, "two/0.bin") is None
    assert stored(other_s3, bucket, "one/0.bin") is None


def test_environment_blocks_are_per_thread_and_leave_os_environ_alone(s3_server, other_s3, no_env):
    buckets = {id(s3_server): s3_server.create_bucket(), id(other_s3): other_s3.create_bucket()}
    step = threading.Barrier(2, timeout=60)
    seen: list[str | None] = []
    failures: list[BaseException] = []

    def work(server: S3Server, text: str) -> None:
        try:
            with storage.environment(server.env()):
                step.wait()
                seen.append(os.environ.get("AWS_ENDPOINT_URL_S3"))
                storage.write_text(f"s3://{buckets[id(server)]}/who", text)
                step.wait()
        except BaseException as error:
            failures.append(error)
            step.abort()

    run_side_by_side(work, [(s3_server, "one"), (other_s3, "two")], failures)
    assert seen == [None, None]
    assert stored(s3_server, buckets[id(s3_server)], "who") == b"one"
    assert stored(other_s3, buckets[id(other_s3)], "who") == b"two"


def test_a_pool_task_bound_with_in_this_block_reaches_the_callers_endpoint(s3_server, no_env):
    """A worker thread starts with a fresh context: unbound, it reaches the default endpoint
    (no keys here), bound, the block's. DeepRacer's run reader and the dashboard read so."""
    bucket = s3_server.create_bucket()
    url = f"s3://{bucket}/note"
    with storage.environment(s3_server.env()):
        storage.write_text(url, "here")
        with ThreadPoolExecutor(max_workers=1) as pool:
            assert pool.submit(storage.in_this_block(storage.read_text), url).result() == "here"
            with pytest.raises(storage.StorageError):
                pool.submit(storage.read_text, url).result()


def test_an_explicit_endpoint_wins_over_the_environment(s3_server, other_s3, monkeypatch):
    use_env(monkeypatch, other_s3.env())  # the environment names the other server
    bucket = s3_server.create_bucket()
    storage.write_text(f"s3://{bucket}/a.txt", "here", endpoint=endpoint_of(s3_server))
    assert stored(s3_server, bucket, "a.txt") == b"here"


def test_a_gcs_key_file_that_is_missing_is_named(no_env):
    """The record's key file is loaded as google-auth loads GOOGLE_APPLICATION_CREDENTIALS."""
    endpoint = storage.Endpoint(gs=storage.GcsEndpoint(credentials_file="/nonexistent/key.json"))
    with pytest.raises(storage.StorageError) as failure:
        storage.exists("gs://bucket/a.bin", endpoint=endpoint)
    assert str(failure.value) == (
        "gs://bucket/a.bin: no credentials found for gs://; check GOOGLE_APPLICATION_CREDENTIALS"
        " (or the service account's roles on the bucket)"
    )


def test_streamed_copy_between_two_servers_in_bounded_memory(
    s3_server, other_s3, no_env, tmp_path: Path, capsys
):
    size = COPY_MEMORY_BOUND + CHUNK_SIZE + 12345  # more than a copy may hold; not aligned
    source_file = tmp_path / "checkpoint.data"
    with open(source_file, "wb") as out:
        for index in range(0, size, CHUNK_SIZE):
            out.write(payload(min(CHUNK_SIZE, size - index), seed=index))
    one, two = endpoint_of(s3_server), endpoint_of(other_s3)
    source = f"s3://{s3_server.create_bucket()}/run/model/checkpoint.data"
    target_bucket = other_s3.create_bucket()
    digest = storage.upload(source_file, source, endpoint=one)

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        copied = storage.copy(
            source,
            f"s3://{target_bucket}/up/model/checkpoint.data",
            source_endpoint=one,
            target_endpoint=two,
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    with capsys.disabled():
        print(f"\nstreamed copy of {size / 2**20:.1f} MiB: peak {peak / 2**20:.1f} MiB traced")
    assert copied == digest
    assert peak < COPY_MEMORY_BOUND < size
    assert sha256_stored(other_s3, target_bucket, "up/model/checkpoint.data") == digest
    assert stored(other_s3, target_bucket, "up/model/checkpoint.data.sha256") == (
        f"{digest}\n".encode()
    )


def test_copy_without_sidecar_writes_the_object_only(s3_server, other_s3, no_env):
    source_bucket, target_bucket = s3_server.create_bucket(), other_s3.create_bucket()
    s3_server.put(source_bucket, "m/model_5.pb", b"graph 5")  # no sidecar: a simulator's file
    digest = storage.copy(
        f"s3://{source_bucket}/m/model_5.pb",
        f"s3://{target_bucket}/up/model_5.pb",
        source_endpoint=endpoint_of(s3_server),
        target_endpoint=endpoint_of(other_s3),
        sidecar=False,
    )
    assert digest == hashlib.sha256(b"graph 5").hexdigest()
    keys = other_s3.client().list_objects_v2(Bucket=target_bucket)["Contents"]
    assert [item["Key"] for item in keys] == ["up/model_5.pb"]


@pytest.mark.parametrize("target_scheme", ["s3", "file"])
def test_copy_of_a_corrupted_source_leaves_no_target(
    s3_server, other_s3, no_env, tmp_path: Path, target_scheme: str
):
    """Checked against the source's sidecar before the target is committed: a multipart
    upload is abandoned, a local file removed."""
    source_file = tmp_path / "a.bin"
    source_file.write_bytes(payload(CHUNK_SIZE + 1000))
    bucket = s3_server.create_bucket()
    source = f"s3://{bucket}/a.bin"
    storage.upload(source_file, source, endpoint=endpoint_of(s3_server))
    s3_server.put(bucket, "a.bin", payload(CHUNK_SIZE + 1000, seed=7))  # behind its back
    target_bucket = other_s3.create_bucket()
    target = f"s3://{target_bucket}/b.bin" if target_scheme == "s3" else str(tmp_path / "out/b.bin")

    with pytest.raises(storage.StorageError, match="does not match its checksum sidecar"):
        storage.copy(
            source,
            target,
            source_endpoint=endpoint_of(s3_server),
            target_endpoint=endpoint_of(other_s3),
            sidecar=False,
        )

    if target_scheme == "s3":
        assert other_s3.client().list_objects_v2(Bucket=target_bucket).get("Contents") is None
    else:
        assert not (tmp_path / "out" / "b.bin").exists()


def test_progress_callback_is_told_the_bytes_of_each_phase(s3_server, no_env, tmp_path: Path):
    size = CHUNK_SIZE + 4321
    source_file = tmp_path / "tub.tar.zst"
    source_file.write_bytes(payload(size))
    endpoint = endpoint_of(s3_server)
    url = f"s3://{s3_server.create_bucket()}/tub.tar.zst"
    calls: list[tuple[str, int, int]] = []

    def record(what: str, done: int, total: int) -> None:
        calls.append((what, done, total))

    storage.upload(source_file, url, progress=record, endpoint=endpoint)
    storage.download(url, tmp_path / "back.tar.zst", progress=record, endpoint=endpoint)
    storage.copy(url, str(tmp_path / "copy.tar.zst"), source_endpoint=endpoint, progress=record)

    phases: dict[str, list[tuple[int, int]]] = {}
    for what, done, total in calls:
        phases.setdefault(what, []).append((done, total))
    assert list(phases) == [
        "hashing tub.tar.zst",
        "uploading tub.tar.zst",
        f"verifying {url}",
        "downloading back.tar.zst",
        "copying tub.tar.zst",
        f"verifying {tmp_path}/copy.tar.zst",
    ]
    for what, counts in phases.items():
        done = [d for d, _ in counts]
        assert done[0] == 0 and done[-1] == size, (what, counts)
        assert done == sorted(done), what
        assert {t for _, t in counts} == {size}, what
    assert len(phases["downloading back.tar.zst"]) == 3  # 0, then one call per chunk


def test_the_package_imports_without_rich():
    """The trainer image carries training/: no drawing library in it."""
    code = "import sys, training.storage; print('rich' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k not in STORAGE_ENV}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert result.stdout.strip() == "False"
