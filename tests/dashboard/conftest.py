"""The dashboard as users run it (`python -m trackday dashboard`), over a real S3 server on
loopback, and Debian's Chromium driven by Playwright (never a downloaded browser build)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import dr_samples
from tests.dashboard import dashboard_data
from tests.dashboard.web_video import serve_viewer
from tests.servers import ROOT, S3Server, free_port
from tests.training.deepracer import dr_data
from training import storage

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"  # screenshots; gitignored
DR_PREFIX = "speedy-1"
SAMPLE_PREFIX = "sample-drfc-3"
EPOCHS = 7
COMPLETE_RUN = "20261130-100000-aaaaaa"
RUNS = {
    COMPLETE_RUN: "COMPLETE",
    "20261130-110000-bbbbbb": "FAILED",
    "20261130-120000-cccccc": "running",
}
START_TIMEOUT_S = 60.0
GOOD = "good"  # the stack with a readable bucket


@dataclass(frozen=True)
class Dashboard:
    url: str
    server: S3Server
    bucket: str
    video: Path | None
    viewer_port: int  # where the page looks for `trackday dr viewer`


def _ssh_key(work: Path) -> tuple[str, str]:
    """A generated key pair (private, public): the stack's key, and a host key to expect."""
    key = work / "key"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key.read_text(), (work / "key.pub").read_text()


def _outputs(
    path: Path, server: S3Server, bucket: str, secret: str, manager: int | None = None
) -> Path:
    """A local stack's outputs as `pulumi stack output --json --show-secrets` prints them;
    with `manager`, a swarm manager's too, at a loopback port where nothing listens."""
    outputs = {
        "target": "local",
        "bucketUrl": f"s3://{bucket}",
        "s3Endpoint": server.endpoint,
        "s3AccessKeyId": server.key,
        "s3SecretAccessKey": secret,
    }
    if manager is not None:
        private, public = _ssh_key(path.parent)
        outputs |= {
            "managerAddress": "127.0.0.1",
            "sshPort": manager,
            "sshUser": "root",
            "sshPrivateKey": private,
            "managerHostKey": public,
        }
    path.write_text(json.dumps(outputs))
    return path


def _wait_until_up(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dashboard exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise RuntimeError(f"dashboard did not answer in {START_TIMEOUT_S:.0f} s: {log}")


@pytest.fixture(scope="module")
def dashboard(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    work = tmp_path_factory.mktemp("dashboard")
    bucket = s3_server.create_bucket()
    with storage.environment(s3_server.env()):
        runs = f"s3://{bucket}/runs/donkeycar"
        dashboard_data.donkey_run(runs, COMPLETE_RUN, EPOCHS, work)
        dashboard_data.donkey_run(runs, "20261130-110000-bbbbbb", 3, work, outcome="failed")
        dashboard_data.donkey_run(runs, "20261130-120000-cccccc", 3, work, outcome="running")
    video = dashboard_data.deepracer_run(s3_server, bucket, DR_PREFIX, work)
    sample = dr_samples.logs_dir() / "sample-drfc-3-logs"  # real simulator files, 3 workers
    dashboard_data.upload_folder(s3_server, bucket, sample, SAMPLE_PREFIX)
    project = work / "project"  # the stacks given by --outputs; "good" priced as the aws stack
    project.mkdir()
    shutil.copy(ROOT / "Pulumi.aws.yaml", project / f"Pulumi.{GOOD}.yaml")
    port, viewer_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    good = _outputs(work / "good.json", s3_server, bucket, s3_server.secret)
    broken = _outputs(work / "broken.json", s3_server, bucket, "wrong", manager=free_port())
    argv = [
        sys.executable,
        "-m",
        "trackday",
        "dashboard",
        "--no-browser",
        "--port",
        str(port),
        "--project",
        str(project),
        "--models",
        str(work / "no-models"),
        "--tracks-dir",
        str(dr_data.TRACKS.resolve()),
        "--refresh",
        "0.5",
        "--viewer-port",
        str(viewer_port),
        "--outputs",
        f"{GOOD}={good}",
        "--outputs",
        f"broken={broken}",
    ]
    log = work / "dashboard.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    try:
        _wait_until_up(url, process, log)
        yield Dashboard(url, s3_server, bucket, video, viewer_port)
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (scripts/setup test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


class Page:
    """A browser page that records console errors and uncaught exceptions."""

    def __init__(self, browser, width: int, height: int) -> None:
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def screenshot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def laptop(browser) -> Iterator[Page]:
    page = Page(browser, 1366, 800)
    yield page
    page.page.close()


@pytest.fixture
def phone(browser) -> Iterator[Page]:
    page = Page(browser, 390, 844)
    yield page
    page.page.close()


@pytest.fixture
def viewer(dashboard: Dashboard) -> Iterator[int]:
    """`trackday dr viewer` of DR_PREFIX's run, on the port the dashboard looks at."""
    with serve_viewer(dashboard.viewer_port, DR_PREFIX) as worker:
        yield worker
