"""What `trackday dr gui` needs to reach one simulation worker's VNC server (DRfC's
DR_GUI_ENABLE): whether the run has the GUI on, and the worker's address on the runs' network.

Why a relay on the runs' network, and not the worker's port published on its node's
loopback: a Swarm service cannot publish on one address. Its port configuration has no host
address at all (Engine API `EndpointPortConfig`: Name, Protocol, TargetPort, PublishedPort,
PublishMode), so `mode=host`, which "publishes the port directly on the swarm node where
that service is running", binds it on all of that node's addresses; an address is the open
request moby/moby#26696 (moby/moby#32299: a compose file's `127.0.0.1:` prefix is dropped
for a service, and the port is public). A firewall rule per node
could close such a port again, but would have to follow every task. So the worker's VNC port
is published nowhere: a plain container on the manager (trackday/gui_relay.py), which may
bind 127.0.0.1, joins the runs' overlay network and relays to that one worker's address,
wherever its node is; the operator reaches it through the SSH connection trackday has to the
manager, as the camera viewer does.
"""

from __future__ import annotations

import docker

from trackday.errors import RunError
from training.deepracer.services import NETWORK


def gui_enabled(service: dict) -> bool:
    """The service runs with ENABLE_GUI true (simapp's run.sh reads it case-blind)."""
    env = service["Spec"]["TaskTemplate"]["ContainerSpec"].get("Env") or []
    return any(item.lower() == "enable_gui=true" for item in env)


def worker_address(client: docker.DockerClient, service: dict, worker: int) -> str:
    """The address on the runs' network of the running task in slot `worker`."""
    name = service["Spec"]["Name"]
    for task in client.api.tasks(filters={"service": service["ID"]}):
        if task.get("Slot") != worker or task["Status"]["State"] != "running":
            continue
        for attachment in task.get("NetworksAttachments") or []:
            if attachment["Network"]["Spec"]["Name"] == NETWORK and attachment["Addresses"]:
                return attachment["Addresses"][0].split("/", 1)[0]
    raise RunError(
        f"worker {worker} of {name} is not running on the {NETWORK} network "
        "(`trackday dr status` lists the runs and their workers)"
    )
