"""Every page in Chromium: it loads without console errors and shows what the bucket holds."""

from __future__ import annotations

import pytest

from tests.dashboard import dashboard_data
from tests.dashboard.conftest import COMPLETE_RUN, DR_PREFIX, EPOCHS, GOOD, RUNS, SAMPLE_PREFIX
from tests.servers import ROOT
from tests.training.deepracer import dr_data
from trackday.dashboard import spend
from trackday.dashboard.costs import stack_price
from training import storage

WAIT_MS = 60_000  # deadline for a condition; the page polls every 0.5 s


def _points(page, chart: str, trace: int = 0) -> int:
    return page.evaluate(f"document.getElementById('{chart}').data[{trace}].x.length")


def _fits(view) -> bool:
    """Nothing wider than the screen: wide tables scroll inside their own box."""
    return view.page.evaluate("document.documentElement.scrollWidth <= innerWidth")


def _wait_drawn(page, chart: str) -> None:
    page.wait_for_function(
        f"document.getElementById('{chart}')?.dataset.drawn > 0", timeout=WAIT_MS
    )


def test_home_lists_the_stacks(dashboard, laptop, phone):
    for view, name in ((laptop, "home-laptop"), (phone, "home-phone")):
        view.page.goto(dashboard.url + "/")
        rows = view.page.locator("#stacks tbody tr")
        assert rows.count() == 2
        assert "s3://" + dashboard.bucket in rows.nth(1).inner_text()
        view.screenshot(name)
        assert view.errors == [] and _fits(view)


def test_home_shows_the_cost_so_far_and_an_unreachable_manager(dashboard, laptop):
    page = laptop.page
    page.goto(dashboard.url + "/")
    spent = page.locator(f"#cost-{GOOD} .spent").text_content()
    assert spent.strip().startswith("$")  # priced as the aws stack's nodes
    assert f"DonkeyCar {COMPLETE_RUN}: 0.01 h" in spent and f"DeepRacer {DR_PREFIX}:" in spent
    for uncounted in ("20261130-110000-bbbbbb", "20261130-120000-cccccc"):  # failed, running
        assert uncounted not in spent
    note = page.locator("#manager-error-broken").inner_text()
    assert "cannot reach the manager root@127.0.0.1" in note and "pulumi up" in note
    assert page.locator(f"#manager-{GOOD}").count() == 0  # no swarm: no nodes section
    assert laptop.errors == [] and _fits(laptop)


def test_cost_so_far_is_the_runs_hours_at_the_stacks_price(dashboard):
    price = stack_price(ROOT, "aws")
    bucket = f"s3://{dashboard.bucket}"
    with storage.environment(dashboard.server.env()):
        found = spend.stack_spend(bucket, f"{bucket}/runs/donkeycar", price, deepracer=False)
    counted = {r.name: r.hours for r in found.runs}
    # the manifest's phases, `fit` (inside `train`) not added again
    assert counted[COMPLETE_RUN] == pytest.approx((1.5 + 0.2 + 0.1 + 42.0 + 0.4 + 0.8) / 3600)
    assert "20261130-110000-bbbbbb" not in counted and "20261130-120000-cccccc" not in counted
    assert found.cost == round(price.per_hour * found.hours, 2) and price.per_hour > 0


def test_donkeycar_table_lists_every_run(dashboard, laptop, phone):
    for view, name in ((laptop, "donkey-runs-laptop"), (phone, "donkey-runs-phone")):
        view.page.goto(dashboard.url + "/s/good/donkey")
        rows = view.page.locator("#donkey-runs tbody tr")
        cells = [rows.nth(i).locator("td") for i in range(rows.count())]
        statuses = {c.nth(0).inner_text(): c.nth(1).inner_text() for c in cells}
        assert {run: statuses.get(run) for run in RUNS} == RUNS
        complete = view.page.locator("#donkey-runs tr", has_text=COMPLETE_RUN).inner_text()
        assert "300" in complete and "5.3.0" in complete and "linear" in complete
        view.screenshot(name)
        assert view.errors == [] and _fits(view)


def test_loss_chart_has_a_point_per_epoch(dashboard, laptop, phone):
    for view, name in ((laptop, "donkey-run-laptop"), (phone, "donkey-run-phone")):
        view.page.goto(dashboard.url + f"/s/good/donkey/{COMPLETE_RUN}")
        _wait_drawn(view.page, "loss-chart")
        assert _points(view.page, "loss-chart", 0) == EPOCHS
        assert _points(view.page, "loss-chart", 1) == EPOCHS
        links = view.page.locator("#downloads a")
        assert "pilot.tflite" in [links.nth(i).inner_text() for i in range(links.count())]
        view.screenshot(name)
        assert view.errors == [] and _fits(view)


def test_a_model_file_downloads_as_uploaded(dashboard, laptop):
    run = f"/s/good/donkey/{COMPLETE_RUN}/files/pilot.tflite"
    response = laptop.page.request.get(dashboard.url + run)
    assert response.status == 200 and response.body() == b"tflite model"
    assert response.headers["content-disposition"] == "attachment; filename*=utf-8''pilot.tflite"
    ranged = laptop.page.request.get(dashboard.url + run, headers={"Range": "bytes=7-"})
    assert ranged.status == 206 and ranged.body() == b"model"
    assert ranged.headers["content-range"] == "bytes 7-11/12"


def test_failed_run_shows_its_reason(dashboard, laptop):
    laptop.page.goto(dashboard.url + "/s/good/donkey/20261130-110000-bbbbbb")  # the failed one
    assert "wrote no model" in laptop.page.locator("#failure").inner_text()
    assert laptop.errors == []


def test_deepracer_chart_gains_an_appended_iteration(dashboard, laptop, phone):
    page = laptop.page
    page.goto(f"{dashboard.url}/s/good/dr/{DR_PREFIX}")
    _wait_drawn(page, "reward-chart")
    assert _points(page, "reward-chart") == dr_data.ITERATIONS
    dashboard_data.append_iteration(dashboard.server, dashboard.bucket, DR_PREFIX)
    page.wait_for_function(
        f"document.getElementById('reward-chart').data[0].x.length == {dr_data.ITERATIONS + 1}",
        timeout=WAIT_MS,
    )
    laptop.screenshot("dr-run-laptop")
    phone.page.goto(f"{dashboard.url}/s/good/dr/{DR_PREFIX}")
    _wait_drawn(phone.page, "map-chart")
    phone.screenshot("dr-run-phone")
    assert laptop.errors == [] and phone.errors == [] and _fits(phone)


def test_deepracer_list_and_a_sample_run_of_the_simulator(dashboard, laptop):
    page = laptop.page
    page.goto(f"{dashboard.url}/s/good/dr")
    links = page.locator("#dr-runs a")
    assert [links.nth(i).inner_text() for i in range(links.count())] == [SAMPLE_PREFIX, DR_PREFIX]
    links.first.click()
    _wait_drawn(page, "reward-chart")
    _wait_drawn(page, "map-chart")
    assert "3 worker(s)" in page.locator("main").inner_text()
    assert page.locator("#evaluations tbody tr").count() > 0
    laptop.screenshot("dr-sample-laptop")
    assert laptop.errors == []


def test_entropy_chart_has_a_point_per_round_of_policy_training(dashboard, laptop):
    page = laptop.page
    page.goto(f"{dashboard.url}/s/good/dr/{DR_PREFIX}")
    _wait_drawn(page, "entropy-chart")
    log = dashboard_data.console_trainer_log().read_text()
    assert _points(page, "entropy-chart") == log.count("training epoch=0,") == 28
    page.goto(f"{dashboard.url}/s/good/dr/{SAMPLE_PREFIX}")  # DRfC's files: no trainer log
    assert "no trainer log" in page.locator("#no-entropy").inner_text()
    assert page.locator("#entropy-chart").count() == 0
    assert laptop.errors == []


def test_simtrace_map_draws_the_track_and_the_steps(dashboard, laptop):
    page = laptop.page
    page.goto(f"{dashboard.url}/s/good/dr/{DR_PREFIX}")
    _wait_drawn(page, "map-chart")
    traces = page.evaluate("document.getElementById('map-chart').data.map(t => t.x.length)")
    # the track's centre line and borders, then every step of both workers' last iteration
    assert len(traces) == 4 and min(traces[:3]) > 10
    assert traces[3] == 2 * 5 * 30
    page.select_option("#map-controls select[name=colour]", "speed")
    page.wait_for_function(
        "document.getElementById('map-chart').dataset.drawn > 1", timeout=WAIT_MS
    )
    assert "speed" in page.evaluate("document.getElementById('map-chart').data[3].name")
    assert laptop.errors == []


def test_evaluation_video_plays(dashboard, laptop):
    if dashboard.video is None:
        pytest.skip("no ffmpeg here to encode an MP4")
    page = laptop.page
    page.goto(f"{dashboard.url}/s/good/dr/{DR_PREFIX}")
    video = page.locator("video").first
    video.evaluate("v => v.play()")
    page.wait_for_function(
        "document.querySelector('video').readyState >= 3 && "
        "document.querySelector('video').currentTime > 0",
        timeout=WAIT_MS,
    )
    assert laptop.errors == []


def test_unreadable_bucket_shows_its_error_page(dashboard, laptop):
    response = laptop.page.goto(dashboard.url + "/s/broken/donkey")
    assert response.status == 502
    text = laptop.page.locator("#error").inner_text()
    assert "broken" in text and f"s3://{dashboard.bucket}" in text
    assert "AWS_ACCESS_KEY_ID" in text  # how to fix it
    laptop.screenshot("error-laptop")


def test_running_run_page_updates_when_the_run_completes(dashboard, laptop, tmp_path):
    run_id = "20261130-130000-dddddd"
    runs = f"s3://{dashboard.bucket}/runs/donkeycar"
    with storage.environment(dashboard.server.env()):
        dashboard_data.donkey_run(runs, run_id, 4, tmp_path, outcome="running")
    laptop.page.goto(f"{dashboard.url}/s/good/donkey/{run_id}")
    assert laptop.page.locator("#run-status").inner_text() == "running"
    with storage.environment(dashboard.server.env()):
        dashboard_data.donkey_run(runs, run_id, 4, tmp_path)
    laptop.page.wait_for_function(
        "document.getElementById('run-status').textContent == 'COMPLETE'", timeout=WAIT_MS
    )
    _wait_drawn(laptop.page, "loss-chart")
    assert _points(laptop.page, "loss-chart") == 4
    assert laptop.errors == []
