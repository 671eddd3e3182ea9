"""`trackday dr import`: a DRfC folder written in DRfC's env-file format becomes stack config."""

import pytest
import yaml

from tests.training.deepracer.dr_data import RUN_ENV, SYSTEM_ENV, make_drfc
from training.deepracer.drfc_import import STACK_KEY, ImportProblem, import_drfc, parse_env
from training.deepracer.settings import DeepRacerSettings


def test_parse_env_format():
    values = parse_env("A=1\n# B=2\nexport C = 'x y'\nD=\"$A-${C}\"\nE=v # note\n\nF=a=b\n")
    assert values == {"A": "1", "C": "x y", "D": "1-x y", "E": "v", "F": "a=b"}


def test_import_maps_settings_and_lists_the_rest(tmp_path):
    result = import_drfc(make_drfc(tmp_path / "drfc"), tmp_path / "out")
    s = result.settings
    assert (s.run_id, s.world, s.race_type.value, s.workers) == (
        2,
        "2022_april_open_ccw",
        "OBJECT_AVOIDANCE",
        4,
    )
    assert (s.car.name, s.car.color.value, s.car.display_name, s.car.racer_name) == (
        "Speedy",
        "Blue",
        "Speedy",
        "Speedy-racer",
    )
    assert (s.evaluation.number_of_trials, s.evaluation.save_mp4) == (5, True)
    assert s.training.best_model_metric.value == "laptime"
    assert s.training.real_time_factor == 1.5
    assert (s.model_prefix, s.pretrained.enabled, s.pretrained.model_prefix) == (
        "speedy-3",
        True,
        "speedy-2",
    )
    assert s.object_avoidance.object_positions == ["0.2,1", "0.5,-1"]
    assert s.object_avoidance.obstacle_type == "deepracer_box_obstacle"
    assert s.simulator.reference == "awsdeepracercommunity/deepracer-simapp:6.0.1-cpu"
    assert (s.cameras.sub, s.cloudwatch.enabled, s.upload.bucket) == (True, True, None)
    unmapped = {u.key: u for u in result.unmapped}
    assert set(unmapped) == {
        "DR_CLOUD",
        "DR_AWS_APP_REGION",
        "DR_UPLOAD_S3_PROFILE",
        "DR_LOCAL_S3_BUCKET",
        "DR_LOCAL_S3_PROFILE",
        "DR_DOCKER_STYLE",
        "DR_LOCAL_S3_REWARD_KEY",
        "DR_SOMETHING_NEW",
        "notes.txt",
    }
    assert "trackday always uses custom_files/reward_function.py" in str(
        unmapped["DR_LOCAL_S3_REWARD_KEY"]
    )
    assert str(unmapped["DR_LOCAL_S3_BUCKET"]) == (
        "system.env: DR_LOCAL_S3_BUCKET=my-models (the stack creates the bucket)"
    )
    assert unmapped["DR_SOMETHING_NEW"].file == "run.env"
    copied = sorted(p.name for p in result.copied)
    assert copied == ["hyperparameters.json", "model_metadata.json", "reward_function.py"]
    assert not (tmp_path / "out" / "custom_files" / "notes.txt").exists()


def test_stack_yaml_round_trips(tmp_path):
    result = import_drfc(make_drfc(tmp_path / "drfc"), tmp_path / "out")
    section = yaml.safe_load(result.stack_yaml())["config"][STACK_KEY]
    assert section["car"]["name"] == "Speedy" and section["raceType"] == "OBJECT_AVOIDANCE"
    assert section["objectAvoidance"]["objectPositions"] == ["0.2,1", "0.5,-1"]
    assert "upload" not in section  # DRfC's derived upload prefix is trackday's default too
    assert DeepRacerSettings.model_validate(section) == result.settings


def test_multi_config_training_is_listed(tmp_path):
    run = RUN_ENV.replace("DR_TRAIN_MULTI_CONFIG=False", "DR_TRAIN_MULTI_CONFIG=True")
    result = import_drfc(make_drfc(tmp_path / "drfc", run=run))
    assert any(
        u.key == "DR_TRAIN_MULTI_CONFIG" and "not supported" in u.reason for u in result.unmapped
    )


def test_bad_value_names_the_drfc_key(tmp_path):
    with pytest.raises(ImportProblem, match=r"^system.env: DR_WORKERS=lots: Input should be"):
        import_drfc(make_drfc(tmp_path / "drfc", system=SYSTEM_ENV + "DR_WORKERS=lots\n"))


def test_not_a_drfc_folder(tmp_path):
    with pytest.raises(ImportProblem, match=r"system.env.*not found: point at a DRfC folder"):
        import_drfc(tmp_path)


def test_not_defined_is_no_upload_bucket(tmp_path):
    """DRfC's init.sh writes DR_UPLOAD_S3_BUCKET=not-defined when there is none."""
    root = make_drfc(tmp_path / "drfc", system=SYSTEM_ENV + "DR_UPLOAD_S3_BUCKET=not-defined\n")
    result = import_drfc(root)
    assert result.settings.upload.bucket is None
    assert "bucket" not in result.values.get("upload", {})


def test_an_experiment_brings_its_own_run_env_and_custom_files(tmp_path):
    """DRfC's bin/activate.sh: with DR_EXPERIMENT_NAME, experiments/<name>/run.env and
    its custom_files/ replace the root ones."""
    root = make_drfc(tmp_path / "drfc", system=SYSTEM_ENV + "DR_EXPERIMENT_NAME=sprint-v2\n")
    experiment = root / "experiments" / "sprint-v2"
    (experiment / "custom_files").mkdir(parents=True)
    (experiment / "run.env").write_text("DR_WORLD_NAME=Spain_track\nDR_LOCAL_S3_MODEL_PREFIX=v2\n")
    for name in ("reward_function.py", "model_metadata.json", "hyperparameters.json"):
        (experiment / "custom_files" / name).write_text(f"sprint-v2 {name}")
    result = import_drfc(root, tmp_path / "out")
    assert (result.settings.world, result.settings.model_prefix) == ("Spain_track", "v2")
    assert (tmp_path / "out" / "custom_files" / "reward_function.py").read_text() == (
        "sprint-v2 reward_function.py"
    )
    assert not any(u.key == "DR_EXPERIMENT_NAME" for u in result.unmapped)
    chosen = import_drfc(root, experiment=None)
    assert chosen.settings.world == "Spain_track"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../../etc", "is not a folder name"),
        ("missing", "experiment missing has no folder"),
    ],
)
def test_a_bad_experiment_is_named(tmp_path, name, message):
    root = make_drfc(tmp_path / "drfc")
    (root / "experiments").mkdir()
    with pytest.raises(ImportProblem, match=message):
        import_drfc(root, experiment=name)
