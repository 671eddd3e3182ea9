"""Shared pytest fixtures: real object-storage servers on 127.0.0.1 (see tests/servers.py).

Each server starts once per test session; tests isolate themselves with a fresh bucket
(`server.create_bucket()` / `server.create_container()`) and put `server.env()` into the
environment with monkeypatch.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import (
    AzuriteServer,
    GcsServer,
    S3Server,
    serve_azurite,
    serve_gcs,
    serve_s3,
)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """`rclone serve s3` on a loopback port, with a generated key pair."""
    with serve_s3(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteServer]:
    """Azurite's blob service on a loopback port, with a generated account key."""
    with serve_azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsServer]:
    """gcp-storage-emulator on a loopback port."""
    with serve_gcs(tmp_path_factory.mktemp("gcs")) as server:
        yield server
