"""Which workers render on an X server (`deepracer.opengl`), and what they get for it: the
stack config and the services read the key with the same default (on for cloud GPU nodes)."""

from __future__ import annotations

import pytest

from infra import xorg
from infra.config import ConfigError, parse
from infra.workloads.run_target import RunTarget, local_display
from tests.infra.stacks import shipped_values
from tests.infra.test_stack_config import _trackday_keys
from training.deepracer.params import Bucket
from training.deepracer.services import (
    X_SOCKET_DIR,
    XAUTHORITY_IN_CONTAINER,
    Mount,
    Site,
    evaluation_services,
    training_services,
)
from training.deepracer.settings import DeepRacerSettings

BUCKET = Bucket(name="runs", region="eu-west-1")
CLOUD = RunTarget(object(), BUCKET, "s3://runs", {}, None, False, cloud="gcp").site  # type: ignore[arg-type]


def workers(site: Site, **values):
    return training_services(DeepRacerSettings.model_validate(values), site)[1]


def test_cloud_workers_get_the_nodes_display_and_socket_by_default():
    simulation = workers(CLOUD, workers=2)
    assert simulation.env["DISPLAY"] == xorg.DISPLAY == ":99"
    assert simulation.env["USE_EXTERNAL_X"] == "true"  # simapp run.sh: no Xvfb of its own
    assert simulation.env["NVIDIA_DRIVER_CAPABILITIES"] == "all"  # graphics too
    assert simulation.mounts == (Mount(X_SOCKET_DIR, X_SOCKET_DIR),)
    evaluation = evaluation_services(DeepRacerSettings(), CLOUD)[0]
    assert evaluation.env["DISPLAY"] == ":99" and evaluation.mounts == simulation.mounts


def test_opengl_off_leaves_the_workers_as_they_were():
    simulation = workers(CLOUD, opengl=False)
    assert "DISPLAY" not in simulation.env and simulation.mounts == ()


def test_local_target_uses_the_users_display_only_when_asked(tmp_path):
    cookie = tmp_path / ".Xauthority"
    cookie.write_bytes(b"\x01\x00")
    display, found = local_display({"DISPLAY": ":1", "HOME": str(tmp_path)})
    assert (display, found) == (":1", str(cookie))
    assert local_display({"HOME": str(tmp_path)}) == (None, None)  # no desktop
    assert local_display({"DISPLAY": ":1", "XAUTHORITY": str(tmp_path / "gone")}) == (":1", None)
    local = Site(BUCKET, single_node=True, display=display, xauthority=found)
    assert "DISPLAY" not in workers(local).env  # unset: off on the local target
    asked = workers(local, opengl=True)
    assert asked.env["DISPLAY"] == ":1" and asked.env["XAUTHORITY"] == XAUTHORITY_IN_CONTAINER
    assert asked.mounts == (
        Mount(X_SOCKET_DIR, X_SOCKET_DIR),
        Mount(str(cookie), XAUTHORITY_IN_CONTAINER, read_only=True),
    )
    # Asked for, but no display to use: the workers start their own Xvfb, as before.
    assert "DISPLAY" not in workers(Site(BUCKET, single_node=True), opengl=True).env


@pytest.mark.parametrize(
    ("stack", "deepracer", "nodes_run_x"),
    [
        ("dev", None, False),
        ("gcp", None, True),
        ("gcp", {"opengl": False}, False),
        ("dev", {"opengl": True}, False),
    ],
)
def test_nodes_run_the_x_server_where_the_services_expect_it(stack, deepracer, nodes_run_x):
    keys = _trackday_keys(shipped_values(stack))
    if deepracer is not None:
        keys["deepracer"] = deepracer
    assert parse(keys).deepracer_opengl is nodes_run_x


def test_gpu_per_worker_is_a_stack_config_key_checked_as_a_boolean():
    keys = _trackday_keys(shipped_values("gcp"))
    keys["deepracer"] = {"gpuPerWorker": True}
    assert parse(keys).deepracer.gpu_per_worker is True
    keys["deepracer"] = {"gpuPerWorker": "sometimes"}
    with pytest.raises(ConfigError, match=r"trackday:deepracer\.gpuPerWorker: 'sometimes'"):
        parse(keys)
