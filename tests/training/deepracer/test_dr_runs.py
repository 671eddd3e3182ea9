"""The checks `trackday dr start-*` makes on this machine before it touches the bucket."""

from __future__ import annotations

import os
import stat

import docker.errors
import pytest

from trackday.dr_network import remove_network_if_unused
from trackday.dr_runs import RunError, sagemaker_dir
from training.deepracer.services import NETWORK, WORKLOAD, WORKLOAD_LABEL


def test_the_sagemaker_folder_is_made_private(tmp_path):
    folder = tmp_path / "sagemaker"
    old = os.umask(0)
    try:
        sagemaker_dir(folder)
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    sagemaker_dir(folder)  # an own, private one is reused


def test_a_sagemaker_folder_others_can_fill_is_refused(tmp_path):
    """Another local user who made it first (writable by all) could plant files the trainer,
    which holds the Docker socket, mounts."""
    folder = tmp_path / "sagemaker"
    folder.mkdir()
    folder.chmod(0o777)
    with pytest.raises(RunError, match=r"is writable by other users \(mode 777\): `chmod go-w"):
        sagemaker_dir(folder)


def test_a_sagemaker_link_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    link = tmp_path / "sagemaker"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(
        RunError,
        match=r"is not a folder \(a link or a file someone made\): "
        r"remove it \(`sudo rm -rf .*sagemaker`\)",
    ):
        sagemaker_dir(link)


class RemovedNetworkEngine:
    """The engine's answers while Swarm removes `sagemaker-local`: the listing still shows
    it for a few more calls, the network itself is gone (docker's NotFound, a 404)."""

    def __init__(self, listed_for: int = 3):
        self.api = self
        self.listed_for = listed_for

    def services(self, filters=None):
        return []

    def networks(self, names=None):
        self.listed_for -= 1
        if self.listed_for < 0:
            return []
        return [{"Name": NETWORK, "Id": "gone", "Labels": {WORKLOAD_LABEL: WORKLOAD}}]

    def inspect_network(self, network_id):
        raise docker.errors.NotFound(f"network {network_id} not found")

    def remove_network(self, network_id):
        raise docker.errors.NotFound(f"network {network_id} not found")


def test_a_network_being_removed_is_no_error():
    """A second stop right after the first saw the network listed but already gone."""
    engine = RemovedNetworkEngine()
    assert remove_network_if_unused(engine, timeout_s=60) == []
    assert engine.networks() == []  # returned only once the engine stopped listing it
