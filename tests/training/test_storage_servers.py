"""The test servers themselves answer on loopback with the credentials they advertise."""

from tests.servers import AzuriteServer, GcsServer, S3Server


def test_s3_server_serves_buckets(s3_server: S3Server):
    bucket = s3_server.create_bucket()
    s3_server.put(bucket, "a/b.txt", b"hello")
    body = s3_server.client().get_object(Bucket=bucket, Key="a/b.txt")["Body"].read()
    assert body == b"hello"
    assert s3_server.endpoint.startswith("http://127.0.0.1:")


def test_azurite_server_serves_containers(azurite_server: AzuriteServer):
    container = azurite_server.create_container()
    azurite_server.put(container, "a/b.txt", b"hello")
    blob = azurite_server.client().get_blob_client(container, "a/b.txt")
    assert blob.download_blob().readall() == b"hello"


def test_gcs_server_serves_buckets(gcs_server: GcsServer):
    import urllib.request

    bucket = gcs_server.create_bucket()
    gcs_server.put(bucket, "a/b.txt", b"hello")
    url = f"{gcs_server.endpoint}/download/storage/v1/b/{bucket}/o/a%2Fb.txt?alt=media"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"hello"
