"""`trackday dr gui`'s checks before it starts anything: a run without the GUI is refused
with the setting to change, and a worker is found by its task slot on the runs' network
only while it runs (task records in the Engine API's shape)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from trackday.dr_gui import gui_enabled, worker_address
from trackday.dr_viewer import start_gui_relay
from trackday.errors import RunError
from training.deepracer.services import NETWORK

NAME = "trackday-dr-3-simulation"


def service(*env: str) -> dict:
    return {"ID": "s1", "Spec": {"Name": NAME, "TaskTemplate": {"ContainerSpec": {"Env": env}}}}


def task(slot: int, state: str, network: str, address: str) -> dict:
    attachment = {"Network": {"Spec": {"Name": network}}, "Addresses": [address]}
    return {"Slot": slot, "Status": {"State": state}, "NetworksAttachments": [attachment]}


def engine(*tasks: dict):
    return SimpleNamespace(api=SimpleNamespace(tasks=lambda filters: list(tasks)))


def test_a_run_without_the_gui_is_refused_naming_the_setting():
    assert gui_enabled(service("ENABLE_GUI=True")) and not gui_enabled(service("ENABLE_GUI=False"))
    with pytest.raises(RunError, match=r"trackday:deepracer\.cameras\.gui true"):
        start_gui_relay(engine(), service("ENABLE_GUI=False"), 3, 1, None)


def test_the_worker_is_its_running_task_of_that_slot_on_the_runs_network():
    client = engine(
        task(2, "shutdown", NETWORK, "10.0.1.9/24"),  # an earlier task of slot 2
        task(1, "running", NETWORK, "10.0.1.4/24"),
        task(2, "running", "ingress", "10.0.0.7/24"),
        task(2, "running", NETWORK, "10.0.1.5/24"),
    )
    assert worker_address(client, service(), 2) == "10.0.1.5"
    with pytest.raises(RunError, match=f"worker 3 of {NAME} is not running"):
        worker_address(client, service(), 3)
