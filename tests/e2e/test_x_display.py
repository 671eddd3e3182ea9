"""A simulation worker's service, as trackday deploys it with `deepracer.opengl`, reaches the
node's X server: Xorg started from the rendered unit (test-only dummy driver, no GPU here),
and the service's own env (DISPLAY) and mount (the X socket folder) let `xdpyinfo` inside
its container draw on it. The image holds only xdpyinfo and the libraries it links."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import tarfile
import time
from pathlib import Path

import docker
import pytest

from tests.infra.test_xorg import dummy_server
from trackday.swarm_jobs import task_template
from training.deepracer.params import Bucket
from training.deepracer.services import Site, training_services
from training.deepracer.settings import DeepRacerSettings

IMAGE = "trackday-xdpyinfo:test"
XDPYINFO = "/usr/bin/xdpyinfo"


def xdpyinfo_image(client: docker.DockerClient) -> str:
    """This machine's xdpyinfo and the shared libraries `ldd` lists for it, as an image."""
    listed = subprocess.run(["ldd", XDPYINFO], capture_output=True, text=True, check=True)
    paths = [XDPYINFO] + [
        word for line in listed.stdout.splitlines() for word in line.split() if word.startswith("/")
    ]
    rootfs = io.BytesIO()
    with tarfile.open(fileobj=rootfs, mode="w") as tar:
        for path in paths:
            tar.add(Path(path).resolve(), arcname=path.lstrip("/"))
        folder = tarfile.TarInfo("tmp")
        folder.type, folder.mode = tarfile.DIRTYPE, 0o1777
        tar.addfile(folder)
    repository, tag = IMAGE.split(":")
    client.api.import_image_from_data(
        rootfs.getvalue(), repository=repository, tag=tag, changes=[f'ENTRYPOINT ["{XDPYINFO}"]']
    )
    return IMAGE


def test_a_worker_service_draws_on_the_nodes_x_server(swarm: docker.DockerClient, tmp_path):
    if not Path(XDPYINFO).exists():
        pytest.skip("no xdpyinfo here: apt-get install x11-utils")
    image = xdpyinfo_image(swarm)
    with dummy_server(tmp_path) as (display, _):
        site = Site(Bucket("runs", "eu-west-1"), display=display, gpu_nodes=True)
        worker = training_services(DeepRacerSettings(run_id=97), site)[1]
        assert worker.env["DISPLAY"] == display and worker.mounts
        # The image and command of this test; no run network, role label or GPU here.
        spec = dataclasses.replace(
            worker, image=image, args=(), networks=(), constraints=(), gpus=0, init=False
        )
        created = swarm.api.create_service(task_template(spec, {}), name=f"{spec.name}-x")
        try:
            deadline = time.monotonic() + 120
            while True:
                tasks = swarm.api.tasks(filters={"service": created["ID"]})
                states = [t["Status"]["State"] for t in tasks]
                if (
                    any(s in ("complete", "failed", "rejected") for s in states)
                    or time.monotonic() > deadline
                ):
                    break
                time.sleep(0.5)
            logs = b"".join(swarm.api.service_logs(created["ID"], stdout=True, stderr=True))
            assert states == ["complete"], ([t["Status"] for t in tasks], logs)
            assert f"name of display:    {display}".encode() in logs
            assert b"dimensions:    1400x900 pixels" in logs
        finally:
            swarm.api.remove_service(created["ID"])
