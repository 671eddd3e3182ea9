"""`trackday dr viewer`: the simulation workers' camera streams on 127.0.0.1 of the operator's
machine, as DRfC's dr-start-viewer shows them.

A container on the swarm manager (the simulator image, already there for the trainer) joins
the runs' network and runs trackday/viewer_proxy.py, published on the manager's loopback
only. On the local target that is this machine; on a cloud swarm trackday forwards a port
of this machine's loopback through the SSH connection it already has to the manager. The
container goes when the command ends.
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

from contract.swarm import RUN_LABEL, SIMULATION_ROLE, WORKLOAD_LABEL
from trackday import dr_runs, dr_status
from trackday.dr_commands import DIRECTORY, OUTPUTS, RUN_ID, STACK, _context, _fail, _say
from training.deepracer.services import NETWORK, WORKLOAD

PROXY = Path(__file__).with_name("viewer_proxy.py")
PROXY_PORT = 8100  # inside the container
LOOPBACK = "127.0.0.1"
VIEWER_LABEL = "trackday.viewer"


def viewer_name(run_id: int) -> str:
    return f"trackday-dr-viewer-{run_id}"


def start_proxy(
    client: docker.DockerClient, service: dict, run_id: int, node_port: int, stream: dict[str, str]
):
    """The proxy container for one simulation service, on the node's loopback only."""
    spec = service["Spec"]
    image = spec["TaskTemplate"]["ContainerSpec"]["Image"].split("@", 1)[0]
    with contextlib.suppress(docker.errors.NotFound):
        client.containers.get(viewer_name(run_id)).remove(force=True)  # a stale one
    environment = {"VIEWER_UPSTREAM": f"tasks.{spec['Name']}", "VIEWER_PORT": str(PROXY_PORT)}
    environment |= {f"VIEWER_{key.upper()}": value for key, value in stream.items()}
    return client.containers.run(
        image,
        ["python3", "-c", PROXY.read_text()],
        entrypoint=[],
        detach=True,
        name=viewer_name(run_id),
        network=NETWORK,
        environment=environment,
        ports={f"{PROXY_PORT}/tcp": (LOOPBACK, node_port)},
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
            threading.Thread(target=_pump, args=(source, target), daemon=True).start()


def _pump(source, target) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:  # shut down, not just close: that wakes the pump reading the other way
        for end in (source, target):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                end.close()


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
    stop = threading.Event()
    try:
        if target.manager is None:
            _say(f"viewer of run {settings.run_id}: http://{LOOPBACK}:{port}/ (Ctrl-C stops it)")
            stop.wait()
        else:
            with socket.create_server((LOOPBACK, port)) as listener:
                _say(
                    f"viewer of run {settings.run_id}: http://{LOOPBACK}:{port}/ through SSH "
                    f"to {target.manager.address} (Ctrl-C stops it)"
                )
                forward(listener, _ssh_channel(client, port), stop)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)
    _say("viewer stopped")
