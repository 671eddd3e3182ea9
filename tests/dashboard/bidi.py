"""Debian's firefox-esr driven over WebDriver BiDi, the W3C protocol Firefox itself serves.

Playwright drives a stock Firefox only through BiDi as well (`channel="moz-firefox"`), but
Playwright 1.65 opens every context with `emulation.setMediaFeaturesOverride`, which Firefox ESR
153 answers "unknown command"; geckodriver is in no Debian, PyPI or npm package that works
offline. So the tests speak the protocol directly, over the `websockets` client: Firefox started
with `--remote-debugging-port=0` prints "WebDriver BiDi listening on ws://HOST:PORT", and
`ws://HOST:PORT/session` takes `session.new` (https://w3c.github.io/webdriver-bidi/,
https://firefox-source-docs.mozilla.org/remote/). Console errors and uncaught exceptions arrive
as `log.entryAdded` events with level "error", as Playwright's console/pageerror events do.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import queue
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

FIREFOX = Path("/usr/bin/firefox-esr")
LISTENING = re.compile(r"WebDriver BiDi listening on (ws://\S+)")
START_TIMEOUT_S = 60.0
COMMAND_TIMEOUT_S = 90.0
# Off the network and quiet: this machine reaches no Mozilla service (Firefox's remote agent sets
# its own "recommended" automation preferences on top of these).
PREFS = {
    "app.update.disabledForTesting": True,
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "browser.startup.homepage_override.mstone": "ignore",
}


class BidiError(RuntimeError):
    """Firefox answered a command with an error, or not in time."""


class Firefox:
    """One headless Firefox, its first tab, and the errors its pages logged."""

    def __init__(self, executable: Path = FIREFOX) -> None:
        self._profile = Path(tempfile.mkdtemp(prefix="trackday-firefox-"))
        user_js = "".join(f'user_pref("{k}", {json.dumps(v)});\n' for k, v in PREFS.items())
        (self._profile / "user.js").write_text(user_js)
        argv = [str(executable), "--headless", "--no-remote", "--remote-debugging-port=0"]
        self._process = subprocess.Popen(
            [*argv, "--profile", str(self._profile)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._log: list[str] = []
        self._endpoint: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self._ids = itertools.count(1)
        self._closing = contextlib.ExitStack()
        self.errors: list[str] = []
        try:
            endpoint = self._endpoint.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            self.close()
            raise BidiError(f"firefox-esr did not start: {''.join(self._log)[-2000:]}") from None
        self._socket = self._closing.enter_context(
            connect(f"{endpoint}/session", max_size=None, open_timeout=30)
        )
        self.command("session.new", capabilities={})
        self.command("session.subscribe", events=["log.entryAdded"])
        tree = self.command("browsingContext.getTree", maxDepth=0)
        self.context = tree["contexts"][0]["context"]

    def _read_stderr(self) -> None:
        for line in self._process.stderr:  # drained to the end: a full pipe would stall Firefox
            self._log.append(line)
            found = LISTENING.search(line)
            if found:
                self._endpoint.put(found.group(1))

    def command(self, method: str, **params: Any) -> dict:
        """Send one command and wait for its answer, keeping the events that come first."""
        number = next(self._ids)
        self._socket.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            try:
                message = json.loads(self._socket.recv(timeout=COMMAND_TIMEOUT_S))
            except TimeoutError:
                raise BidiError(f"{method}: no answer in {COMMAND_TIMEOUT_S:.0f} s") from None
            if message.get("type") == "event":
                self._event(message)
            elif message.get("id") == number:
                if message.get("type") == "error":
                    raise BidiError(f"{method}: {message['error']}: {message.get('message')}")
                return message["result"]

    def _event(self, message: dict) -> None:
        entry = message["params"]
        if message["method"] == "log.entryAdded" and entry.get("level") == "error":
            self.errors.append(f"{entry.get('type')}: {entry.get('text')}")

    def viewport(self, width: int, height: int) -> None:
        self.command(
            "browsingContext.setViewport",
            context=self.context,
            viewport={"width": width, "height": height},
        )

    def goto(self, url: str) -> None:
        self.command("browsingContext.navigate", context=self.context, url=url, wait="complete")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (awaited), passed back as JSON."""
        result = self.command(
            "script.evaluate",
            expression=f"(async () => JSON.stringify(await ({expression})))()",
            target={"context": self.context},
            awaitPromise=True,
        )
        if result["type"] == "exception":
            details = result["exceptionDetails"]
            raise BidiError(f"{expression}: {details.get('text')}")
        value = result["result"].get("value")
        return None if value is None else json.loads(value)

    def wait_for(self, condition: str, timeout_ms: int) -> None:
        """Wait until `condition` is true in the page, checked every 50 ms in the page (as
        Playwright's wait_for_function polls); BidiError at the deadline."""
        waited = self.evaluate(
            "new Promise((resolve) => { const end = performance.now() + "
            f"{timeout_ms}; const check = () => {{ let ok = false; try {{ ok = !!({condition}); "
            "} catch (e) {} if (ok || performance.now() > end) resolve(ok); "
            "else setTimeout(check, 50); }; check(); })"
        )
        if not waited:
            raise BidiError(f"not true after {timeout_ms} ms: {condition}")

    def screenshot(self, path: Path) -> None:
        shot = self.command("browsingContext.captureScreenshot", context=self.context)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            if hasattr(self, "_socket"):
                self.command("browser.close")
        except (BidiError, ConnectionClosed, OSError):
            pass  # Firefox may drop the connection as it closes
        finally:
            self._closing.close()
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            shutil.rmtree(self._profile, ignore_errors=True)
