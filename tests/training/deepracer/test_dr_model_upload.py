"""`upload-model`'s plan: one checkpoint in the layout DRfC exports and DRoA imports."""

import json

import pytest
import yaml

from training.deepracer.layout import RunLayout
from training.deepracer.model_upload import ModelUploadError, export_params, plan_upload
from training.deepracer.params import dump_params
from training.deepracer.settings import DeepRacerSettings

LAYOUT = RunLayout(model_prefix="run-3")
# records as the trainer writes them (simapp deepracer_checkpoints.json)
BEST = {"name": "2_Step-300.ckpt", "time_stamp": 1732900000.5, "avg_comp_pct": 88.0}
LAST = {"name": "4_Step-610.ckpt", "time_stamp": 1732900900.1, "avg_comp_pct": 71.5}
RECORDS = {"best_checkpoint": BEST, "last_checkpoint": LAST}
PARAMS = "---\nJOB_TYPE: TRAINING\n"
NOW = 1733000000


def run_keys(*numbers_steps, extra=()):
    keys = {
        "run-3/model/model_metadata.json",
        "run-3/reward_function.py",
        "run-3/training_params.yaml",
        "run-3/model/deepracer_checkpoints.json",
        "run-3/ip/hyperparameters.json",
        "run-3/metrics/TrainingMetrics.json",
        "run-3/metrics/TrainingMetrics_1.json",
        "run-3/metrics/evaluation/evaluation-20261130120000.json",
        *extra,
    }
    for number, steps in numbers_steps:
        keys |= {
            f"run-3/model/{number}_Step-{steps}.ckpt.{s}"
            for s in ("index", "meta", "data-00000-of-00001")
        }
        keys.add(f"run-3/model/model_{number}.pb")
    return keys


def plan(keys, records=RECORDS, choice="last", target="up-1"):
    return plan_upload(LAYOUT, keys, records, choice, target, PARAMS, NOW)


def test_last_checkpoint_in_the_import_layout():
    made = plan(run_keys((2, 300), (4, 610)))
    assert made.checkpoint == "4_Step-610.ckpt"
    assert made.copies == {
        "up-1/model/4_Step-610.ckpt.index": "run-3/model/4_Step-610.ckpt.index",
        "up-1/model/4_Step-610.ckpt.meta": "run-3/model/4_Step-610.ckpt.meta",
        "up-1/model/4_Step-610.ckpt.data-00000-of-00001": (
            "run-3/model/4_Step-610.ckpt.data-00000-of-00001"
        ),
        "up-1/model/model_4.pb": "run-3/model/model_4.pb",
        "up-1/model/model_metadata.json": "run-3/model/model_metadata.json",
        "up-1/model_metadata.json": "run-3/model/model_metadata.json",  # DRoA reads the root
        "up-1/reward_function.py": "run-3/reward_function.py",
        "up-1/ip/hyperparameters.json": "run-3/ip/hyperparameters.json",
        "up-1/metrics/TrainingMetrics.json": "run-3/metrics/TrainingMetrics.json",
        "up-1/metrics/TrainingMetrics_1.json": "run-3/metrics/TrainingMetrics_1.json",
        "up-1/metrics/evaluation/evaluation-20261130120000.json": (
            "run-3/metrics/evaluation/evaluation-20261130120000.json"
        ),
    }
    assert json.loads(made.writes["up-1/model/deepracer_checkpoints.json"]) == {
        "best_checkpoint": LAST,
        "last_checkpoint": LAST,
    }
    assert made.writes["up-1/model/.coach_checkpoint"] == b"4_Step-610.ckpt"
    assert made.writes["up-1/training_params.yaml"] == PARAMS.encode()
    assert "up-1/model/checkpoint" not in made.writes  # no TensorFlow checkpoint file


def test_best_or_a_numbered_checkpoint():
    keys = run_keys((2, 300), (4, 610))
    best = plan(keys, choice="best", target="up")
    assert best.checkpoint == "2_Step-300.ckpt" and "up/model/model_2.pb" in best.copies
    numbered = plan(keys, {}, "4", "up")
    assert numbered.checkpoint == "4_Step-610.ckpt"
    assert json.loads(numbered.writes["up/model/deepracer_checkpoints.json"])[
        "last_checkpoint"
    ] == {"name": "4_Step-610.ckpt", "time_stamp": NOW, "avg_comp_pct": 50.0}


def test_the_reward_function_falls_back_to_the_custom_files():
    keys = run_keys((4, 610)) - {"run-3/reward_function.py"} | {"custom_files/reward_function.py"}
    assert plan(keys).copies["up-1/reward_function.py"] == "custom_files/reward_function.py"


@pytest.mark.parametrize(
    ("keys", "records", "choice", "message"),
    [
        (run_keys((2, 300)), {}, "last", "names no last checkpoint yet"),
        (run_keys((2, 300)), RECORDS, "newest", "checkpoint 'newest' must be 'last', 'best' or a"),
        (run_keys((2, 300)), RECORDS, "7", "no checkpoint 7 in run-3/model/"),
        (run_keys((2, 300)), RECORDS, "last", "checkpoint 4_Step-610.ckpt has no files"),
        (
            run_keys((2, 300)) - {"run-3/model/model_2.pb"},
            RECORDS,
            "best",
            "the run lacks run-3/model/model_2.pb",
        ),
        (
            run_keys((2, 300)) - {"run-3/reward_function.py"},
            RECORDS,
            "best",
            "the run lacks custom_files/reward_function.py",
        ),
        (
            run_keys((2, 300)) - {"run-3/ip/hyperparameters.json"},
            RECORDS,
            "best",
            "the run lacks run-3/ip/hyperparameters.json",
        ),
        (
            {k for k in run_keys((2, 300)) if "/metrics/" not in k},
            RECORDS,
            "best",
            "the run lacks run-3/metrics/ (the training metrics)",
        ),
    ],
)
def test_what_is_missing_is_named(keys, records, choice, message):
    with pytest.raises(ModelUploadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan(keys, records, choice, "up")


def test_training_params_are_written_for_the_target():
    """Not the source bucket's endpoint and prefixes (DRfC's upload/prepare-config.py)."""
    settings = DeepRacerSettings(model_prefix="run-3", world="2022_april_pro_cw")
    params = export_params(settings, "my-upload", "eu-west-1", "up-1")
    assert (params["SAGEMAKER_SHARED_S3_BUCKET"], params["SAGEMAKER_SHARED_S3_PREFIX"]) == (
        "my-upload",
        "up-1",
    )
    assert params["MODEL_METADATA_FILE_S3_KEY"] == "up-1/model/model_metadata.json"
    assert params["REWARD_FILE_S3_KEY"] == "up-1/reward_function.py"
    assert params["METRICS_S3_OBJECT_KEY"] == "up-1/TrainingMetrics.json"
    assert "S3_ENDPOINT_URL" not in params and params["AWS_REGION"] == "eu-west-1"
    assert params["WORLD_NAME"] == "2022_april_pro_cw" and "TRACK_DIRECTION_CLOCKWISE" not in params
    droa = export_params(settings, "droa-up", "us-east-1", "uploads/models/x", droa=True)
    assert (droa["WORLD_NAME"], droa["TRACK_DIRECTION_CLOCKWISE"]) == ("2022_april_pro", True)
    assert yaml.safe_load(dump_params(droa))["TRACK_DIRECTION_CLOCKWISE"] is True
    reversed_plain = settings.model_copy(update={"world": "reInvent2019_track"}).model_copy(
        update={"training": settings.training.model_copy(update={"reverse_direction": True})}
    )
    assert (
        export_params(reversed_plain, "b", "r", "p", droa=True)["TRACK_DIRECTION_CLOCKWISE"]
        is False
    )
