"""training.storage against real servers on 127.0.0.1 (rclone serve s3, Azurite,
gcp-storage-emulator) and the local filesystem (file:// URLs and plain paths)."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard

from tests.servers import free_port, serve_s3, unique_name
from training import storage
from training.storage import StorageError

STORAGE_ENV = (
    "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION",
    "STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS",
    "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT_NAME",
)  # fmt: skip
DOWN_SERVER_BOUND_S = 20.0


def use_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """Exactly `env` for storage: nothing from the machine's own configuration leaks in."""
    for key in STORAGE_ENV:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


@dataclass
class Store:
    """A fresh, empty place to store things, and a way around training.storage to write there."""

    scheme: str
    base: str  # URL (or plain path) of the empty bucket/folder
    put: Callable[[str, bytes], None]  # write an object at a key relative to `base`


def object_store(request: pytest.FixtureRequest, monkeypatch, scheme: str) -> Store:
    if scheme == "s3":
        server = request.getfixturevalue("s3_server")
        bucket = server.create_bucket()
        use_env(monkeypatch, server.env())
        return Store(scheme, f"s3://{bucket}", lambda key, data: server.put(bucket, key, data))
    if scheme == "az":
        server = request.getfixturevalue("azurite_server")
        container = server.create_container()
        use_env(monkeypatch, server.env())
        return Store(scheme, f"az://{container}", lambda k, d: server.put(container, k, d))
    server = request.getfixturevalue("gcs_server")
    bucket = server.create_bucket()
    use_env(monkeypatch, server.env())
    return Store(scheme, f"gs://{bucket}", lambda key, data: server.put(bucket, key, data))


def local_store(tmp_path: Path, monkeypatch, scheme: str) -> Store:
    root = tmp_path / "store"
    root.mkdir()
    use_env(monkeypatch, {})

    def put(key: str, data: bytes) -> None:
        target = root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    base = f"file://{root}" if scheme == "file" else str(root)
    return Store(scheme, base, put)


@pytest.fixture(params=["s3", "az", "gs", "file", "path"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Store:
    if request.param in ("file", "path"):
        return local_store(tmp_path, monkeypatch, request.param)
    return object_store(request, monkeypatch, request.param)


@pytest.fixture(params=["s3", "az", "gs"])
def remote(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Store:
    return object_store(request, monkeypatch, request.param)


def payload(size: int, seed: int = 1) -> bytes:
    """Deterministic incompressible bytes."""
    out = bytearray()
    block = seed.to_bytes(8, "little")
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out += block * 64
    return bytes(out[:size])


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


# --------------------------------------------------------------------------- round trips


def test_upload_then_download_round_trips_with_checksum(store: Store, tmp_path: Path):
    data = payload(9 * 1024 * 1024 + 123)  # more than one 8 MiB chunk, not a multiple of it
    source = tmp_path / "archive.tar.zst"
    source.write_bytes(data)
    url = storage.join(store.base, "tubs", "archive.tar.zst")

    digest = storage.upload(source, url)

    assert digest == hashlib.sha256(data).hexdigest()
    assert storage.checksum(url) == digest
    target = tmp_path / "fetched" / "archive.tar.zst"
    assert storage.download(url, target) == digest
    assert target.read_bytes() == data
    assert leftovers(target.parent) == []


def test_sidecar_holds_the_digest_and_follows_a_new_upload(store: Store, tmp_path: Path):
    source = tmp_path / "model.tflite"
    source.write_bytes(b"first model")
    url = storage.join(store.base, "run-1", "model.tflite")
    first = storage.upload(source, url, progress=False)
    assert storage.read_text(url + ".sha256").strip() == first

    source.write_bytes(b"second, better model")
    second = storage.upload(source, url, progress=False)

    assert second != first
    assert storage.checksum(url) == second == hashlib.sha256(b"second, better model").hexdigest()
    assert storage.list_files(storage.join(store.base, "run-1")) == [url, url + ".sha256"]


def test_object_without_sidecar_downloads_unverified(store: Store, tmp_path: Path):
    store.put("legacy/tub.tar.gz", b"an archive uploaded by the old scripts")
    url = storage.join(store.base, "legacy/tub.tar.gz")

    assert storage.checksum(url) is None
    digest = storage.download(url, tmp_path / "tub.tar.gz", progress=False)

    assert digest == hashlib.sha256(b"an archive uploaded by the old scripts").hexdigest()


@pytest.mark.parametrize("compressed", [False, True], ids=["tar", "tar.zst"])
def test_stream_feeds_tarfile_and_verifies(store: Store, tmp_path: Path, compressed: bool):
    members = {f"tub/images/{i}_cam_image_array_.jpg": payload(50_000, seed=i) for i in range(20)}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive = buffer.getvalue()
    if compressed:
        archive = zstandard.ZstdCompressor().compress(archive)
    source = tmp_path / "tub.tar"
    source.write_bytes(archive)
    url = storage.join(store.base, "tub.tar")
    digest = storage.upload(source, url, progress=False)

    with storage.open_stream(url) as reader:
        stream = zstandard.ZstdDecompressor().stream_reader(reader) if compressed else reader
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            tar.extractall(tmp_path / "out", filter="data")
        assert reader.verify() == digest  # tar stops before its end padding: verify reads it
        assert reader.sha256() == digest

    for name, data in members.items():
        assert (tmp_path / "out" / name).read_bytes() == data


def test_small_objects_exist_list_and_read_back(store: Store):
    marker = storage.join(store.base, "runs", "r1", "COMPLETE")
    manifest = storage.join(store.base, "runs", "r1", "out", "manifest.json")
    assert not storage.exists(marker)

    storage.write_text(marker, "ok\n")
    storage.write_text(manifest, '{"tflite": "résumé"}')

    assert storage.exists(marker)
    assert storage.read_text(marker) == "ok\n"
    assert storage.read_text(manifest) == '{"tflite": "résumé"}'
    assert storage.list_files(storage.join(store.base, "runs")) == [marker, manifest]
    assert storage.list_files(storage.join(store.base, "nothing-here")) == []


# --------------------------------------------------------------------------- corruption


def test_corrupted_object_fails_download_and_leaves_nothing(store: Store, tmp_path: Path):
    source = tmp_path / "model.h5"
    source.write_bytes(payload(300_000))
    url = storage.join(store.base, "m", "model.h5")
    storage.upload(source, url, progress=False)
    store.put("m/model.h5", payload(300_000, seed=2))  # behind the sidecar's back

    target = tmp_path / "fetched" / "model.h5"
    with pytest.raises(StorageError, match="does not match its checksum sidecar") as failure:
        storage.download(url, target, progress=False)

    assert url in str(failure.value) and "\n" not in str(failure.value)
    assert not target.exists()
    assert leftovers(target.parent) == []
    with storage.open_stream(url) as reader, pytest.raises(StorageError, match="corrupted"):
        reader.verify()


def test_sidecar_that_is_not_a_digest_is_refused(store: Store, tmp_path: Path):
    store.put("x.bin", b"data")
    store.put("x.bin.sha256", b"not a checksum")

    with pytest.raises(StorageError, match="not a sha256 checksum sidecar"):
        storage.download(storage.join(store.base, "x.bin"), tmp_path / "x.bin")


# --------------------------------------------------------------------------- bad cases


def test_missing_object_is_named(store: Store, tmp_path: Path):
    url = storage.join(store.base, "no", "such.tar")
    missing = "no such file" if store.scheme in ("file", "path") else "no such object"
    with pytest.raises(StorageError, match=missing) as failure:
        storage.download(url, tmp_path / "such.tar")
    assert str(failure.value).startswith(url)
    with pytest.raises(StorageError, match=missing):
        storage.read_text(url)
    assert not (tmp_path / "such.tar").exists()


def test_missing_bucket_is_named(remote: Store, tmp_path: Path):
    source = tmp_path / "a.bin"
    source.write_bytes(b"abc")
    missing = unique_name("gone")
    url = f"{remote.scheme}://{missing}/a.bin"
    word = "container" if remote.scheme == "az" else "bucket"
    expected = f"{word} '{missing}' does not exist; create it or fix the URL"

    for attempt in (
        lambda: storage.upload(source, url, progress=False),
        lambda: storage.download(url, tmp_path / "b.bin", progress=False),
        lambda: storage.list_files(f"{remote.scheme}://{missing}/prefix"),
    ):
        with pytest.raises(StorageError) as failure:
            attempt()
        assert expected in str(failure.value)


@pytest.mark.parametrize("scheme", ["s3", "az"])
def test_wrong_key_is_access_denied(scheme: str, request, monkeypatch, tmp_path: Path):
    good = object_store(request, monkeypatch, scheme)
    source = tmp_path / "a.bin"
    source.write_bytes(b"abc")
    if scheme == "s3":
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        hint = "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    else:
        server = request.getfixturevalue("azurite_server")
        wrong = server.connection_string.replace(server.key, "d3Jvbmcga2V5" * 4)
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", wrong)
        hint = "AZURE_STORAGE_CONNECTION_STRING"

    url = storage.join(good.base, "a.bin")
    for attempt in (
        lambda: storage.upload(source, url, progress=False),
        lambda: storage.exists(url),
        lambda: storage.read_text(url),
    ):
        with pytest.raises(StorageError, match="access denied") as failure:
            attempt()
        assert hint in str(failure.value)


def test_server_down_fails_fast_and_says_so(monkeypatch, tmp_path: Path):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    use_env(
        monkeypatch,
        {
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ACCESS_KEY_ID": "key",
            "AWS_SECRET_ACCESS_KEY": "secret",
            "AZURE_STORAGE_CONNECTION_STRING": (
                "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                f"AccountKey={'a2V5' * 11};BlobEndpoint={endpoint}/devstoreaccount1;"
            ),
            "STORAGE_EMULATOR_HOST": endpoint,
        },
    )

    def attempt(scheme: str) -> tuple[str, str, float]:
        url = f"{scheme}://bucket/model.tflite"
        started = time.monotonic()
        with pytest.raises(StorageError) as failure:
            storage.download(url, tmp_path / scheme / "model.tflite", progress=False)
        return url, str(failure.value), time.monotonic() - started

    # The three back-ends wait out their retries side by side, not one after the other.
    with ThreadPoolExecutor(max_workers=3) as pool:
        outcomes = list(pool.map(attempt, ["s3", "az", "gs"]))

    for url, message, took in outcomes:
        assert message.startswith(f"{url}: cannot reach {endpoint}"), message
        assert "check that the server is running" in message and "\n" not in message
        assert took < DOWN_SERVER_BOUND_S, f"{url} took {took:.1f} s"
        assert not (tmp_path / url[:2] / "model.tflite").exists()


def test_server_that_comes_up_late_is_retried(monkeypatch, tmp_path: Path):
    port, key, secret = free_port(), "late-key", "late-secret"
    (tmp_path / "late" / "s3" / "bucket").mkdir(parents=True)  # rclone serves folders as buckets
    use_env(
        monkeypatch,
        {
            "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": key,
            "AWS_SECRET_ACCESS_KEY": secret,
        },
    )
    stop = threading.Event()

    def late_server() -> None:
        time.sleep(1.5)
        with serve_s3(tmp_path / "late", port=port, auth=(key, secret)):
            stop.wait(60)

    thread = threading.Thread(target=late_server, daemon=True)
    source = tmp_path / "a.bin"
    source.write_bytes(b"abc")
    thread.start()
    try:
        started = time.monotonic()
        digest = storage.upload(source, "s3://bucket/a.bin", progress=False)
        assert time.monotonic() - started >= 1.0  # it did wait for the server
        assert digest == hashlib.sha256(b"abc").hexdigest()
    finally:
        stop.set()
        thread.join(30)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://example.org/a", "unsupported URL scheme 'http'"),
        ("file://relative/a", "a file URL needs an absolute path"),
        ("s3:///key", "the URL names no bucket"),
        ("az://container", "names a container but no object"),
    ],
)
def test_bad_urls_are_refused(url: str, message: str, tmp_path: Path):
    source = tmp_path / "a.bin"
    source.write_bytes(b"abc")
    with pytest.raises(StorageError, match=message) as failure:
        storage.upload(source, url)
    assert str(failure.value).startswith(url)


def test_missing_local_file_is_named(tmp_path: Path):
    with pytest.raises(StorageError, match="no such local file"):
        storage.upload(tmp_path / "absent.tar", str(tmp_path / "dest.tar"))


def test_azure_without_an_account_says_what_to_set(monkeypatch):
    use_env(monkeypatch, {})
    with pytest.raises(StorageError, match="AZURE_STORAGE_ACCOUNT_NAME") as failure:
        storage.exists("az://container/key")
    assert str(failure.value).startswith("az://container/key: no Azure storage account")


# --------------------------------------------------------------------------- join


@pytest.mark.parametrize(
    ("base", "parts", "joined"),
    [
        ("s3://bucket", ("runs", "r1/model.h5"), "s3://bucket/runs/r1/model.h5"),
        ("gs://bucket/runs/", ("/r1/",), "gs://bucket/runs/r1"),
        ("az://container/a", (), "az://container/a"),
        ("file:///data/out", ("x",), "file:///data/out/x"),
        ("/data/out/", ("", "x"), "/data/out/x"),
        ("relative", ("x",), "relative/x"),
    ],
)
def test_join(base: str, parts: tuple[str, ...], joined: str):
    assert storage.join(base, *parts) == joined


def test_plain_path_and_file_url_name_the_same_file(tmp_path: Path):
    source = tmp_path / "a.bin"
    source.write_bytes(b"abc")
    digest = storage.upload(source, str(tmp_path / "out" / "a.bin"), progress=False)

    assert storage.checksum(f"file://{tmp_path}/out/a.bin") == digest
    assert storage.list_files(f"file://{tmp_path}/out") == [
        f"file://{tmp_path}/out/a.bin",
        f"file://{tmp_path}/out/a.bin.sha256",
    ]
    assert os.path.exists(tmp_path / "out" / "a.bin.sha256")
