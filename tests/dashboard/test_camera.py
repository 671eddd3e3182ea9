"""A live run's camera streams on its page, from the real viewer proxy in front of a stand-in
web_video_server (tests/dashboard/web_video.py)."""

from __future__ import annotations

from tests.dashboard.conftest import DR_PREFIX, SAMPLE_PREFIX
from tests.dashboard.web_video import WAIT_MS, WebVideoServer


def test_a_live_runs_cameras_play_on_its_page(dashboard, viewer, laptop):
    page = laptop.page
    page.goto(f"{dashboard.url}/s/good/dr/{DR_PREFIX}")
    assert page.locator("#live-camera img").count() == 1  # the one worker the viewer lists
    page.wait_for_function(
        "(() => { const i = document.querySelector('#live-camera img'); "
        "return i.complete && i.naturalWidth == 480 && i.naturalHeight == 360; })()",
        timeout=WAIT_MS,
    )
    # the viewer's default stream, as DRfC's viewer asks web_video_server for it
    assert WebVideoServer.asked[-1] == (
        "/stream?topic=/racecar/deepracer/kvs_stream&quality=75&width=480&height=360"
    )
    laptop.screenshot("dr-live-camera-laptop")
    page.goto(f"{dashboard.url}/s/good/dr/{SAMPLE_PREFIX}")  # another run: not its cameras
    assert page.locator("#live-camera").count() == 0
    assert "trackday dr viewer --stack good" in page.locator("#no-live-camera").inner_text()
    assert laptop.errors == []


def test_without_a_viewer_the_page_says_how_to_start_one(dashboard, laptop):
    laptop.page.goto(f"{dashboard.url}/s/good/dr/{DR_PREFIX}")
    assert laptop.page.locator("#no-live-camera").count() == 1
    assert laptop.errors == []
