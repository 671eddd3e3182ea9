"""`trackday dashboard`: serve the dashboard on 127.0.0.1 and open it in the browser."""

from __future__ import annotations

import os
import threading
import time
import webbrowser
from pathlib import Path

import typer

from infra.program import REPO_ROOT
from training.deepracer.preflight import DEFAULT_TRACKS, TRACKS_ENV

HOST = "127.0.0.1"  # never anything else: guard.py refuses other peers too


def _outputs_files(pairs: list[str]) -> dict[str, Path]:
    found = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise typer.BadParameter(
                f"{pair!r}: write --outputs STACK=FILE", param_hint="--outputs"
            )
        found[name] = Path(path)
    return found


def _tracks_dir(given: Path | None) -> Path | None:
    """--tracks-dir, $TRACKDAY_TRACKS_DIR, else the first folder `trackday dr tracks` filled."""
    candidates = [given, os.environ.get(TRACKS_ENV)]
    candidates += sorted(DEFAULT_TRACKS.glob("*")) if DEFAULT_TRACKS.is_dir() else []
    return next((Path(c) for c in candidates if c and any(Path(c).glob("*.npy"))), None)


def _open_when_up(server, url: str) -> None:
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline and not server.should_exit:
        time.sleep(0.1)
    if server.started:
        webbrowser.open(url)


def dashboard(
    stack: list[str] = typer.Option(
        None,
        "--stack",
        "-s",
        help="Stack to show (repeat; default: every Pulumi.<stack>.yaml of the project).",
    ),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="Port on 127.0.0.1."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Do not open the browser."),
    outputs: list[str] = typer.Option(
        None,
        "--outputs",
        metavar="STACK=FILE",
        help="A stack's "
        "outputs from a file (`pulumi stack output --json "
        "--show-secrets`) instead of the pulumi CLI.",
    ),
    models: Path = typer.Option(
        Path("models"),
        "--models",
        help="Local runs folder (`trackday donkey train --local` writes there).",
    ),
    tracks_dir: Path = typer.Option(
        None, "--tracks-dir", help="Folder of <world>.npy track files for the DeepRacer maps."
    ),
    project: Path = typer.Option(REPO_ROOT, "--project", help="The Pulumi project folder."),
    refresh: float = typer.Option(
        5.0, "--refresh", min=0.5, help="Seconds between updates of a live run's charts."
    ),
    viewer_port: int = typer.Option(
        8100,
        "--viewer-port",
        min=1,
        max=65535,
        help="Where `trackday dr viewer` serves the camera streams (its --port).",
    ),
) -> None:
    """Serve one local, read-only page for every DonkeyCar and DeepRacer run."""
    import uvicorn  # the web stack loads for this command only

    from trackday.dashboard.app import Settings, create_app
    from trackday.dashboard.stacks import discover

    stacks = discover(project, stack or [], _outputs_files(outputs or []), models)
    tracks = _tracks_dir(tracks_dir)
    worlds = sorted(p.stem for p in tracks.glob("*.npy")) if tracks else []
    app = create_app(Settings(stacks, tracks, refresh, worlds, viewer_port=viewer_port))
    server = uvicorn.Server(
        uvicorn.Config(app, host=HOST, port=port, log_level="warning", server_header=False)
    )
    url = f"http://{HOST}:{port}/"
    typer.echo(f"trackday dashboard on {url} ({len(stacks)} source(s)); Ctrl-C to stop")
    if not no_browser:
        threading.Thread(target=_open_when_up, args=(server, url), daemon=True).start()
    server.run()
