"""The dashboard's routes: HTML pages (Jinja2), the charts' JSON, files from the buckets.

Every handler is a plain function, which Starlette runs on its thread pool, and every bucket
read goes through stacks.reading(). Pages that fail to read a bucket answer with error.html
(status 502), saying which stack, which bucket and what to do; the JSON routes the pages poll
answer {"error": ...} instead, which the page shows in place of the chart.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import plotly
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from trackday.dashboard import (
    camera,
    charts,
    deepracer_runs,
    donkey_runs,
    files,
    nodes,
    spend,
)
from trackday.dashboard.guard import LOCAL_HOSTS, LocalReadOnly
from trackday.dashboard.stacks import BucketError, Stack, reading
from trackday.errors import ManagerError
from training import storage
from training.deepracer.metrics import MetricsError
from training.deepracer.policy_log import PolicyLogError
from training.deepracer.run_files import RunFilesError
from training.deepracer.simtrace import SimtraceError

HERE = Path(__file__).resolve().parent
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
WORLD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
templates = Jinja2Templates(directory=HERE / "templates")


@dataclass
class Settings:
    stacks: list[Stack]
    tracks_dir: Path | None = None
    refresh_s: float = 5.0
    worlds: list[str] = field(default_factory=list)
    manager_timeout_s: float = nodes.TIMEOUT_S
    viewer_port: int = camera.DEFAULT_PORT

    def stack(self, name: str) -> Stack:
        for stack in self.stacks:
            if stack.name == name:
                return stack
        raise HTTPException(404, f"no stack {name!r} in this dashboard")


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _page(request: Request, name: str, status: int = 200, **context) -> Response:
    settings = _settings(request)
    return templates.TemplateResponse(
        request,
        name,
        {"stacks": settings.stacks, "refresh_s": settings.refresh_s, **context},
        status_code=status,
    )


def _spend(stack: Stack) -> spend.Spend | str | None:
    """The stack's known runs and their cost, or why its bucket could not say."""
    if stack.bucket_url is None:
        return None
    try:
        with reading(stack) as bucket:
            return spend.stack_spend(
                bucket, stack.donkey_runs_url, stack.price, not stack.is_folder
            )
    except BucketError as error:
        return str(error)


def _manager(stack: Stack, timeout_s: float) -> tuple[nodes.ManagerView, dict] | str:
    try:
        view = nodes.read_manager(stack.outputs or {}, timeout_s)
    except ManagerError as error:
        return str(error)
    price = stack.price
    ttl, idle = (price.ttl_hours, price.idle_minutes) if price else (None, None)
    return view, nodes.power_off_left(view, ttl, idle)


def home(request: Request) -> Response:
    """Every stack; per stack the runs' cost so far and, where it has a swarm, its nodes and
    power-off timers, read from the manager (in parallel: an unreachable one waits out its
    timeout, not the others)."""
    settings = _settings(request)
    with ThreadPoolExecutor(max_workers=4) as pool:
        pending = {
            s.name: pool.submit(_manager, s, settings.manager_timeout_s)
            for s in settings.stacks
            if nodes.has_manager(s.outputs)
        }
        spends = {s.name: _spend(s) for s in settings.stacks}
        managers = {name: found.result() for name, found in pending.items()}
    return _page(request, "home.html", spends=spends, managers=managers)


def donkey_list(request: Request) -> Response:
    stack = _settings(request).stack(request.path_params["stack"])
    with reading(stack):
        runs = donkey_runs.list_runs(stack.donkey_runs_url)
        latest = donkey_runs.latest(stack.donkey_runs_url)
    return _page(request, "donkey_runs.html", stack=stack, runs=runs, latest=latest)


def _donkey_run(request: Request) -> tuple[Stack, donkey_runs.DonkeyRun]:
    stack = _settings(request).stack(request.path_params["stack"])
    with reading(stack):
        run = donkey_runs.read_run(stack.donkey_runs_url, request.path_params["run"])
    if run is None:
        raise HTTPException(
            404, f"no DonkeyCar run {request.path_params['run']!r} in stack {stack.name}"
        )
    return stack, run


def donkey_run(request: Request) -> Response:
    stack, run = _donkey_run(request)
    return _page(request, "donkey_run.html", stack=stack, run=run)


def donkey_loss(request: Request) -> Response:
    stack, run = _donkey_run(request)
    with reading(stack):
        history = donkey_runs.history(stack.donkey_runs_url, run.run_id)
    return JSONResponse({"status": run.status, "figure": charts.loss(history)})


def donkey_file(request: Request) -> Response:
    stack, run = _donkey_run(request)
    name = request.path_params["path"]
    if name not in run.files:
        raise HTTPException(404, f"run {run.run_id} has no file {name!r}")
    with reading(stack):
        found = files.located(storage.join(stack.donkey_runs_url, run.run_id, name))
    download = None if name in run.movies else name.rsplit("/", 1)[-1]
    return files.send(request, *found, download=download)


def _prefix(request: Request) -> tuple[Stack, str]:
    stack = _settings(request).stack(request.path_params["stack"])
    prefix = request.path_params["prefix"]
    if not deepracer_runs.PREFIX.fullmatch(prefix):
        raise HTTPException(404, f"{prefix!r} is not a model prefix")
    return stack, prefix


def dr_list(request: Request) -> Response:
    stack = _settings(request).stack(request.path_params["stack"])
    with reading(stack) as bucket:
        prefixes = deepracer_runs.model_prefixes(bucket)
    return _page(request, "dr_runs.html", stack=stack, prefixes=prefixes)


def dr_run(request: Request) -> Response:
    stack, prefix = _prefix(request)
    with reading(stack) as bucket, ThreadPoolExecutor(max_workers=3) as pool:
        # Both list the prefix and read small objects: side by side, the page comes sooner.
        pending = pool.submit(storage.in_this_block(deepracer_runs.run_info), bucket, prefix)
        live = pool.submit(camera.live_view, _settings(request).viewer_port, prefix)
        run = deepracer_runs.metrics(bucket, prefix)
        rounds = deepracer_runs.policy(bucket, prefix)
        info = pending.result()
    # The first figures come with the page: the reward chart draws without a second request.
    return _page(
        request,
        "dr_run.html",
        stack=stack,
        info=info,
        run=run,
        worlds=_settings(request).worlds,
        figures=_dr_figures(run, rounds),
        live=live.result(),
        viewer_port=_settings(request).viewer_port,
    )


def _dr_figures(run: dict, rounds: list | None) -> dict:
    return {
        "iterations": len(run["iterations"]),
        "reward": charts.reward(run),
        "progress": charts.progress(run),
        "entropy": charts.entropy(rounds) if rounds is not None else None,
    }


def dr_charts(request: Request) -> Response:
    stack, prefix = _prefix(request)
    with reading(stack) as bucket:
        run = deepracer_runs.metrics(bucket, prefix)
        rounds = deepracer_runs.policy(bucket, prefix)
    return JSONResponse(_dr_figures(run, rounds))


def dr_map(request: Request) -> Response:
    stack, prefix = _prefix(request)
    query = request.query_params
    colour = query.get("colour", "reward")
    world = query.get("world") or None
    if colour not in deepracer_runs.COLOURS or not query.get("iteration", "").isdigit():
        raise HTTPException(400, "give ?iteration=N&colour=reward|speed")
    if world is not None and not WORLD.fullmatch(world):
        raise HTTPException(400, f"{world!r} is not a track name")
    iteration = int(query["iteration"])
    with reading(stack) as bucket:
        points = deepracer_runs.simtrace_points(bucket, prefix, iteration, colour)
    track = deepracer_runs.track_lines(_settings(request).tracks_dir, world)
    return JSONResponse(
        {"figure": charts.track_map(track, points, colour, iteration), "track": track is not None}
    )


def dr_video(request: Request) -> Response:
    stack, prefix = _prefix(request)
    name = request.path_params["path"]
    with reading(stack) as bucket:
        info = deepracer_runs.run_info(bucket, prefix)
        if name not in info.videos:
            raise HTTPException(404, f"run {prefix} has no video {name!r}")
        found = files.located(storage.join(bucket, prefix, name))
    return files.send(request, *found)


def plotly_js(request: Request) -> Response:
    # The package's own file: it changes only with the installed plotly.
    return FileResponse(
        PLOTLY_JS, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"}
    )


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


async def bucket_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, BucketError)
    if _is_api(request):
        return JSONResponse({"error": str(error)}, status_code=502)
    return _page(
        request,
        "error.html",
        502,
        title="bucket unreadable",
        stack=error.stack,
        detail=error.detail,
    )


async def data_error(request: Request, error: Exception) -> Response:
    """Files that are there but not in the format their writer uses."""
    if _is_api(request):
        return JSONResponse({"error": str(error)}, status_code=422)
    return _page(
        request, "error.html", 422, title="files not readable", stack=None, detail=str(error)
    )


async def not_found(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if _is_api(request):
        return JSONResponse({"error": error.detail}, status_code=error.status_code)
    return _page(
        request, "error.html", error.status_code, title="not found", stack=None, detail=error.detail
    )


def create_app(settings: Settings) -> Starlette:
    api = "/api/s/{stack}"
    routes = [
        Route("/", home),
        Route("/s/{stack}/donkey", donkey_list),
        Route("/s/{stack}/donkey/{run}", donkey_run),
        Route("/s/{stack}/donkey/{run}/files/{path:path}", donkey_file),
        Route(api + "/donkey/{run}/loss", donkey_loss),
        Route("/s/{stack}/dr", dr_list),
        Route("/s/{stack}/dr/{prefix}", dr_run),
        Route("/s/{stack}/dr/{prefix}/files/{path:path}", dr_video),
        Route(api + "/dr/{prefix}/charts", dr_charts),
        Route(api + "/dr/{prefix}/map", dr_map),
        Route("/static/plotly.min.js", plotly_js),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [
        Middleware(LocalReadOnly),  # the outermost: peers and methods first
        Middleware(TrustedHostMiddleware, allowed_hosts=LOCAL_HOSTS),
    ]
    handlers = {
        BucketError: bucket_error,
        HTTPException: not_found,
        MetricsError: data_error,
        SimtraceError: data_error,
        RunFilesError: data_error,
        PolicyLogError: data_error,
    }
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
    app.state.settings = settings
    return app
