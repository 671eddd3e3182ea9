"""The pure parts of a run: baselines per model type, config keys, record keys, latest.json."""

from __future__ import annotations

import json
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from training.donkeycar import latest
from training.donkeycar.archive import create_archive
from training.donkeycar.config_keys import keys_read_by, unknown_keys
from training.donkeycar.model_types import constant_predictor_loss, record_keys_problem
from training.donkeycar.sample_tub import write_sample_tub
from training.donkeycar.tub_inputs import archive_facts, folder_facts


def test_baseline_is_in_the_models_own_loss_or_none() -> None:
    angles, throttles = [-1.0, 1.0], [0.0, 0.5]  # variances 1.0 and 0.0625
    assert constant_predictor_loss("linear", angles, throttles) == 1.0625  # two MSE outputs
    assert constant_predictor_loss("inferred", angles, throttles) == 1.0  # angle only
    assert constant_predictor_loss("rnn", angles, throttles) == 1.0625 / 2  # one 2-vector MSE
    for cross_entropy in ("categorical", "behavior", "localizer"):
        assert constant_predictor_loss(cross_entropy, angles, throttles) is None


def test_config_keys_read_with_a_default_are_found() -> None:
    source = (
        "def f(cfg, self):\n"
        "    a = cfg.BATCH_SIZE\n"
        "    b = getattr(cfg, 'CACHE_IMAGES', True)\n"
        "    c = self.config.MEM_DEPTH\n"
        "    d = other.NOT_A_CONFIG\n"
        "    e = getattr(cfg, name, 1)\n"
    )
    assert keys_read_by(source) == {"BATCH_SIZE", "CACHE_IMAGES", "MEM_DEPTH"}
    message = unknown_keys(["MAX_EPOCH", "BATCH_SIZE"], {"MAX_EPOCHS", "BATCH_SIZE"})
    assert message == "--set: unknown donkeycar setting MAX_EPOCH (close: MAX_EPOCHS)"
    assert unknown_keys(["BATCH_SIZE"], {"BATCH_SIZE"}) is None


def test_record_keys_name_what_is_missing_and_how_often() -> None:
    records = [{"behavior/one_hot_state_array": [1, 0]}, {}, {"behavior/one_hot_state_array": None}]
    problem = record_keys_problem("behavior", records)
    assert problem and "behavior/one_hot_state_array (missing in 2 record(s))" in problem
    assert record_keys_problem("linear", [{}]) is None


def test_tub_inputs_from_folders_and_from_gnu_tar_archives(tmp_path: Path) -> None:
    """The old scripts' archive (`tar -chf` of the tub's folder, then config files, gzipped)
    and trackday's own both show what the tubs recorded and the car config's model type."""
    tub = write_sample_tub(tmp_path / "data", records=3, sensors=False)
    (tmp_path / "myconfig.py").write_text("DEFAULT_MODEL_TYPE = 'behavior'\n")
    facts = folder_facts([tub], tmp_path)
    assert facts.config_model_type == "behavior"
    assert "tub data lacks behavior/one_hot_state_array" in (facts.problem_for(None) or "")
    assert facts.problem_for("linear") is None

    old = tmp_path / "old.tar"
    subprocess.run(["tar", "-chf", str(old), "-C", str(tub), "."], check=True)
    subprocess.run(["tar", "-rf", str(old), "-C", str(tmp_path), "myconfig.py"], check=True)
    subprocess.run(["gzip", str(old)], check=True)
    facts = archive_facts(tmp_path / "old.tar.gz")
    assert facts.config_model_type == "behavior" and "cam/image_array" in facts.inputs["old"]

    sensors = write_sample_tub(tmp_path / "full", records=3, sensors=True)
    create_archive([sensors], tmp_path / "full.tar.zst", tmp_path)
    facts = archive_facts(tmp_path / "full.tar.zst")
    assert facts.config_model_type == "behavior" and facts.problem_for(None) is None


def _entry(run_id: str, started: datetime) -> dict[str, str]:
    return {"run_id": run_id, "url": f"file:///runs/{run_id}", "started": started.isoformat()}


def test_latest_is_the_run_that_started_last_whatever_finished_last(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    assert latest.publish(str(tmp_path), _entry("late", now))
    assert not latest.publish(f"file://{tmp_path}", _entry("early", now - timedelta(hours=1)))
    assert json.loads((tmp_path / latest.LATEST).read_text())["run_id"] == "late"
    (tmp_path / latest.LATEST).write_text('{"run_id": "trunc')  # a torn write from before
    assert latest.publish(str(tmp_path), _entry("next", now - timedelta(hours=2)))
    assert json.loads((tmp_path / latest.LATEST).read_text())["run_id"] == "next"


def test_concurrent_publishers_leave_the_latest_start_and_never_a_partial_file(
    tmp_path: Path,
) -> None:
    base = datetime.now(UTC)
    entries = [_entry(f"r{i:02d}", base + timedelta(seconds=i)) for i in range(40)]
    seen: list[str] = []
    stop = threading.Event()

    def read_all_the_time() -> None:
        while not stop.is_set():
            path = tmp_path / latest.LATEST
            if path.exists():
                seen.append(json.loads(path.read_text())["run_id"])  # raises on a partial file

    reader = threading.Thread(target=read_all_the_time)
    reader.start()
    threads = [threading.Thread(target=latest.publish, args=(str(tmp_path), e)) for e in entries]
    for thread in reversed(threads):
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    reader.join()
    assert json.loads((tmp_path / latest.LATEST).read_text())["run_id"] == "r39"
    assert not list(tmp_path.glob(".latest.json.*.tmp"))


@pytest.mark.parametrize("started", ["2026-01-01T00:00:00", "yesterday"])
def test_a_latest_without_a_comparable_start_is_replaced(tmp_path: Path, started: str) -> None:
    (tmp_path / latest.LATEST).write_text(json.dumps({"run_id": "old", "started": started}))
    assert latest.publish(str(tmp_path), _entry("new", datetime.now(UTC)))
