"""`trackday dr viewer`: the simulation workers' camera streams on 127.0.0.1 of the operator's
machine, as DRfC's dr-start-viewer shows them; `trackday dr gui`: one worker's VNC server
(DR_GUI_ENABLE) there, the same way (trackday/dr_gui.py says why not a published port).

A container on the swarm manager (the simulator image, already there for the trainer) joins
the runs' network and runs trackday/viewer_proxy.py (or trackday/gui_relay.py), published on
the manager's loopback only. On the local target that is this machine; on a cloud swarm
trackday forwards a port of this machine's loopback through the SSH connection it already
has to the manager. The container goes when the command ends.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors
import typer

from contract.swarm import MODEL_PREFIX_LABEL, RUN_LABEL, SIMULATION_ROLE, WORKLOAD_LABEL
from trackday import dr_runs, dr_status
from trackday.dr_commands import DIRECTORY, OUTPUTS, RUN_ID, STACK, _context, _fail, _say
from trackday.dr_gui import gui_enabled, worker_address
from trackday.gui_relay import pump
from training.deepracer.services import NETWORK, VNC_PORT, WORKLOAD

PROXY = Path(__file__).with_name("viewer_proxy.py")
GUI_RELAY = Path(__file__).with_name("gui_relay.py")
PROXY_PORT = 8100  # inside the container
LOOPBACK = "127.0.0.1"
VIEWER_LABEL = "trackday.viewer"


def viewer_name(run_id: int) -> str:
    return f"trackday-dr-viewer-{run_id}"


def gui_name(run_id: int, worker: int) -> str:
    return f"trackday-dr-gui-{run_id}-{worker}"


def start_proxy(
    client: docker.DockerClient, service: dict, run_id: int, node_port: int, stream: dict[str, str]
):
    """The proxy container for one simulation service, on the node's loopback only."""
    spec = service["Spec"]
    image = spec["TaskTemplate"]["ContainerSpec"]["Image"].split("@", 1)[0]
    with contextlib.suppress(docker.errors.NotFound):
        client.containers.get(viewer_name(run_id)).remove(force=True)  # a stale one
    environment = {
        "VIEWER_UPSTREAM": f"tasks.{spec['Name']}",
        "VIEWER_PORT": str(PROXY_PORT),
        "VIEWER_MODEL_PREFIX": (spec.get("Labels") or {}).get(MODEL_PREFIX_LABEL, ""),
    }
    environment |= {f"VIEWER_{key.upper()}": value for key, value in stream.items()}
    return _run_on_manager(
        client, image, viewer_name(run_id), run_id, PROXY, environment, (PROXY_PORT, node_port)
    )


def start_gui_relay(
    client: docker.DockerClient, service: dict, run_id: int, worker: int, node_port: int | None
):
    """The relay container to worker `worker`'s VNC server, on the manager's loopback only
    (`node_port` None: a free port the engine picks)."""
    if not gui_enabled(service):
        raise dr_runs.RunError(
            f"{service['Spec']['Name']} runs without the GUI: set trackday:deepracer.cameras.gui "
            "true and start the run again"
        )
    name = gui_name(run_id, worker)
    with contextlib.suppress(docker.errors.NotFound):
        client.containers.get(name).remove(force=True)  # a stale one
    environment = {
        "GUI_UPSTREAM": worker_address(client, service, worker),
        "GUI_UPSTREAM_PORT": str(VNC_PORT),
        "GUI_PORT": str(VNC_PORT),
    }
    image = service["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].split("@", 1)[0]
    return _run_on_manager(
        client, image, name, run_id, GUI_RELAY, environment, (VNC_PORT, node_port)
    )


def _run_on_manager(
    client: docker.DockerClient,
    image: str,
    name: str,
    run_id: int,
    script: Path,
    environment: dict[str, str],
    ports: tuple[int, int | None],
):
    """`python3 -c <script>` in the service's image, on the runs' network, published on the
    manager's loopback only (a plain container may bind an address; a Swarm service may not).
    `ports`: the container's, and the manager's."""
    container_port, node_port = ports
    return client.containers.run(
        image,
        ["python3", "-c", script.read_text()],
        entrypoint=[],
        detach=True,
        name=name,
        network=NETWORK,
        environment=environment,
        ports={f"{container_port}/tcp": (LOOPBACK, node_port)},
        labels={WORKLOAD_LABEL: WORKLOAD, RUN_LABEL: str(run_id), VIEWER_LABEL: "proxy"},
    )


def forward(
    listener: socket.socket, open_channel: Callable[[], object], stop: threading.Event
) -> None:
    """Accept connections on `listener` and pump each through a channel `open_channel`
    makes (a paramiko direct-tcpip channel to the manager's loopback), until `stop`."""
    listener.settimeout(0.5)
    while not stop.is_set():
        try:
            local, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        local.settimeout(None)  # a stream may idle longer than the accept poll
        try:
            remote = open_channel()
        except Exception:  # the manager refused: drop this one connection, keep serving
            local.close()
            continue
        for source, target in ((local, remote), (remote, local)):
            threading.Thread(target=pump, args=(source, target), daemon=True).start()


def _ssh_channel(client: docker.DockerClient, node_port: int) -> Callable[[], object]:
    transport = client.api._custom_adapter.ssh_client.get_transport()
    return lambda: transport.open_channel("direct-tcpip", (LOOPBACK, node_port), (LOOPBACK, 0))


def viewer(
    stack: str = STACK,
    directory: Path = DIRECTORY,
    outputs_file: Path = OUTPUTS,
    run_id: int = RUN_ID,
    evaluation: bool = typer.Option(False, "--evaluation", "-e", help="The evaluation's worker."),
    port: int = typer.Option(
        8100, "--port", "-p", help="Port on 127.0.0.1 here (and on the manager's loopback)."
    ),
    topic: str = typer.Option("/racecar/deepracer/kvs_stream", "--topic", "-t"),
    width: int = typer.Option(480, "--width", "-w"),
    height: int = typer.Option(360, "--height", "-h"),
    quality: int = typer.Option(75, "--quality", "-q"),
) -> None:
    """Show the workers' camera streams on http://127.0.0.1:PORT/ until Ctrl-C
    (dr-start-viewer)."""
    settings, target = _context(stack, directory, outputs_file, run_id)
    job = "evaluation" if evaluation else "training"
    stream = {"topic": topic, "width": str(width), "height": str(height), "quality": str(quality)}
    try:
        client = dr_runs.client_for(target)
        service = dr_status.service_of(client, settings.run_id, job, SIMULATION_ROLE)
        container = start_proxy(client, service, settings.run_id, port, stream)
    except dr_runs.RunError as error:
        raise _fail(str(error)) from None
    except docker.errors.APIError as error:
        raise _fail(f"could not start the viewer: {error.explanation}") from None
    serve(
        client,
        target.manager.address if target.manager else None,
        port,
        container,
        f"viewer of run {settings.run_id}: http://{LOOPBACK}:{port}/",
    )
    _say("viewer stopped")


def serve(
    client: docker.DockerClient,
    manager: str | None,
    port: int,
    container,
    banner: str,
    stop: threading.Event | None = None,
) -> None:
    """Until Ctrl-C (or `stop`): with a `manager` (a cloud swarm's address), forward `port`
    on this machine's loopback to the container's port on the manager's, through the SSH
    connection the client has. The container goes at the end."""
    stop = stop or threading.Event()
    try:
        if manager is None:
            _say(f"{banner} (Ctrl-C stops it)")
            stop.wait()
        else:
            container.reload()
            bound = next(iter(container.attrs["NetworkSettings"]["Ports"].values()))
            with socket.create_server((LOOPBACK, port)) as listener:
                _say(f"{banner} through SSH to {manager} (Ctrl-C stops it)")
                forward(listener, _ssh_channel(client, int(bound[0]["HostPort"])), stop)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)


def gui(
    stack: str = STACK,
    directory: Path = DIRECTORY,
    outputs_file: Path = OUTPUTS,
    run_id: int = RUN_ID,
    evaluation: bool = typer.Option(False, "--evaluation", "-e", help="The evaluation's worker."),
    worker: int = typer.Option(1, "--worker", "-n", min=1, help="Which worker (1..workers)."),
    port: int | None = typer.Option(
        None, "--port", "-p", help="Port on 127.0.0.1 here; default 5900 + the run id."
    ),
) -> None:
    """Reach a worker's Gazebo GUI with a VNC viewer on 127.0.0.1:PORT until Ctrl-C (a run
    started with `cameras.gui: true`, DRfC's DR_GUI_ENABLE)."""
    settings, target = _context(stack, directory, outputs_file, run_id)
    job = "evaluation" if evaluation else "training"
    try:
        client = dr_runs.client_for(target)
        manager = target.manager.address if target.manager else None
        gui_session(client, manager, settings.run_id, job, worker, port)
    except dr_runs.RunError as error:
        raise _fail(str(error)) from None
    except docker.errors.APIError as error:
        raise _fail(f"could not start the GUI relay: {error.explanation}") from None
    _say("GUI relay stopped")


def gui_session(
    client: docker.DockerClient,
    manager: str | None,
    run_id: int,
    job: str,
    worker: int,
    port: int | None,
    stop: threading.Event | None = None,
) -> None:
    """`trackday dr gui` once connected: the relay to the worker, served until Ctrl-C
    (or `stop`); on a cloud swarm the engine picks the relay's port on the manager."""
    port = port or VNC_PORT + run_id  # DRfC's DR_ROBOMAKER_GUI_PORT (swarm style)
    service = dr_status.service_of(client, run_id, job, SIMULATION_ROLE)
    container = start_gui_relay(client, service, run_id, worker, port if manager is None else None)
    banner = f"GUI of run {run_id}, worker {worker}: vnc://{LOOPBACK}:{port}"
    serve(client, manager, port, container, banner, stop)
