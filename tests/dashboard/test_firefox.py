"""The pages in Debian's firefox-esr (issue 14: "Pages work in a current Chromium and Firefox"):
each loads without console errors or uncaught exceptions, fits a laptop and a phone screen, and
its charts draw with the data the bucket holds."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.dashboard.bidi import FIREFOX, Firefox
from tests.dashboard.conftest import ARTIFACTS, COMPLETE_RUN, DR_PREFIX, EPOCHS, SAMPLE_PREFIX
from tests.training.deepracer import dr_data

WAIT_MS = 60_000
WIDTHS = {"laptop": (1366, 800), "phone": (390, 844)}


@pytest.fixture(scope="module")
def firefox() -> Iterator[Firefox]:
    if not FIREFOX.exists():
        pytest.skip("Debian's firefox-esr is not installed (apt-get install firefox-esr)")
    browser = Firefox()
    yield browser
    browser.close()


def _drawn(chart: str) -> str:
    return f"document.getElementById('{chart}')?.dataset.drawn > 0"


def _points(chart: str, trace: int = 0) -> str:
    return f"document.getElementById('{chart}').data[{trace}].x.length"


@pytest.mark.parametrize("screen", WIDTHS)
def test_every_page_works_in_firefox(dashboard, firefox: Firefox, screen: str):
    firefox.viewport(*WIDTHS[screen])
    firefox.errors.clear()
    fits = "document.documentElement.scrollWidth <= innerWidth"

    firefox.goto(dashboard.url + "/")
    assert firefox.evaluate("document.querySelectorAll('#stacks tbody tr').length") == 2
    assert firefox.evaluate(fits)

    firefox.goto(dashboard.url + "/s/good/donkey")
    assert COMPLETE_RUN in firefox.evaluate("document.getElementById('donkey-runs').textContent")

    firefox.goto(f"{dashboard.url}/s/good/donkey/{COMPLETE_RUN}")
    firefox.wait_for(_drawn("loss-chart"), WAIT_MS)
    assert firefox.evaluate(_points("loss-chart", 0)) == EPOCHS
    assert firefox.evaluate(_points("loss-chart", 1)) == EPOCHS
    assert firefox.evaluate(fits)

    firefox.goto(f"{dashboard.url}/s/good/dr/{DR_PREFIX}")
    firefox.wait_for(_drawn("reward-chart"), WAIT_MS)
    firefox.wait_for(_drawn("map-chart"), WAIT_MS)
    # the Chromium test may have appended one iteration already (the bucket is shared)
    assert firefox.evaluate(_points("reward-chart")) >= dr_data.ITERATIONS
    assert firefox.evaluate(_points("map-chart", 3)) == 2 * 5 * 30
    assert firefox.evaluate(fits)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    firefox.screenshot(ARTIFACTS / f"firefox-dr-run-{screen}.png")

    firefox.goto(f"{dashboard.url}/s/good/dr/{SAMPLE_PREFIX}")
    firefox.wait_for(_drawn("reward-chart"), WAIT_MS)
    assert firefox.errors == []


def test_a_live_runs_camera_plays_in_firefox(dashboard, viewer, firefox: Firefox):
    firefox.viewport(*WIDTHS["laptop"])
    firefox.errors.clear()
    firefox.goto(f"{dashboard.url}/s/good/dr/{DR_PREFIX}")
    firefox.wait_for(
        "(() => { const i = document.querySelector('#live-camera img'); "
        "return i.complete && i.naturalWidth == 480 && i.naturalHeight == 360; })()",
        WAIT_MS,
    )
    assert firefox.errors == []


def test_firefox_reports_page_errors(dashboard, firefox: Firefox):
    """The check above can fail: an uncaught exception in a page is reported."""
    firefox.goto(dashboard.url + "/")
    firefox.errors.clear()
    firefox.evaluate("setTimeout(() => { throw new Error('deliberate') }, 0) && true")
    deadline = time.monotonic() + WAIT_MS / 1000
    while not firefox.errors and time.monotonic() < deadline:
        firefox.evaluate("true")  # a round trip: events that came meanwhile are read
    assert any("deliberate" in e for e in firefox.errors)
