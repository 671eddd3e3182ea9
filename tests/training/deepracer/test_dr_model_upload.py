"""`upload-model`'s plan: one checkpoint in the layout DeepRacer's model import reads."""

import json

import pytest

from training.deepracer.layout import RunLayout
from training.deepracer.model_upload import ModelUploadError, plan_upload

LAYOUT = RunLayout(model_prefix="run-3")
RECORDS = {"best_checkpoint": {"name": "2_Step-300.ckpt", "avg_eval_metric": 88.0},
           "last_checkpoint": {"name": "4_Step-610.ckpt", "avg_eval_metric": 71.5}}


def run_keys(*numbers_steps, extra=()):
    keys = {"run-3/model/model_metadata.json", "run-3/reward_function.py",
            "run-3/training_params.yaml", "run-3/model/deepracer_checkpoints.json", *extra}
    for number, steps in numbers_steps:
        keys |= {f"run-3/model/{number}_Step-{steps}.ckpt.{s}"
                 for s in ("index", "meta", "data-00000-of-00001")}
        keys.add(f"run-3/model/model_{number}.pb")
    return keys


def test_last_checkpoint_with_records_naming_it_best_and_last():
    plan = plan_upload(LAYOUT, run_keys((2, 300), (4, 610)), RECORDS, "last", "up-1")
    assert plan.checkpoint == "4_Step-610.ckpt"
    assert plan.copies == {
        "up-1/model/4_Step-610.ckpt.index": "run-3/model/4_Step-610.ckpt.index",
        "up-1/model/4_Step-610.ckpt.meta": "run-3/model/4_Step-610.ckpt.meta",
        "up-1/model/4_Step-610.ckpt.data-00000-of-00001":
            "run-3/model/4_Step-610.ckpt.data-00000-of-00001",
        "up-1/model/model_4.pb": "run-3/model/model_4.pb",
        "up-1/model/model_metadata.json": "run-3/model/model_metadata.json",
        "up-1/reward_function.py": "run-3/reward_function.py",
        "up-1/training_params.yaml": "run-3/training_params.yaml",
    }
    records = json.loads(plan.writes["up-1/model/deepracer_checkpoints.json"])
    assert records == {"best_checkpoint": RECORDS["last_checkpoint"],
                       "last_checkpoint": RECORDS["last_checkpoint"]}
    assert plan.writes["up-1/model/.coach_checkpoint"] == b"4_Step-610.ckpt"
    assert plan.writes["up-1/model/checkpoint"].decode().splitlines() == [
        'model_checkpoint_path: "4_Step-610.ckpt"',
        'all_model_checkpoint_paths: "4_Step-610.ckpt"']


def test_best_or_a_numbered_checkpoint_and_the_optional_files():
    keys = run_keys((2, 300), (4, 610), extra=("run-3/ip/hyperparameters.json",
                                               "run-3/metrics/TrainingMetrics.json"))
    best = plan_upload(LAYOUT, keys, RECORDS, "best", "up")
    assert best.checkpoint == "2_Step-300.ckpt" and "up/model/model_2.pb" in best.copies
    assert best.copies["up/ip/hyperparameters.json"] == "run-3/ip/hyperparameters.json"
    assert best.copies["up/metrics/TrainingMetrics.json"] == "run-3/metrics/TrainingMetrics.json"
    numbered = plan_upload(LAYOUT, keys, {}, "4", "up")
    assert numbered.checkpoint == "4_Step-610.ckpt"
    assert json.loads(numbered.writes["up/model/deepracer_checkpoints.json"])[
        "last_checkpoint"] == {"name": "4_Step-610.ckpt"}


@pytest.mark.parametrize(("keys", "records", "choice", "message"), [
    (run_keys((2, 300)), {}, "last", "names no last checkpoint yet"),
    (run_keys((2, 300)), RECORDS, "newest", "checkpoint 'newest' must be 'last', 'best' or a"),
    (run_keys((2, 300)), RECORDS, "7", "no checkpoint 7 in run-3/model/"),
    (run_keys((2, 300)), RECORDS, "last", "checkpoint 4_Step-610.ckpt has no files"),
    (run_keys((2, 300)) - {"run-3/model/model_2.pb"}, RECORDS, "best",
     "the run lacks run-3/model/model_2.pb"),
    (run_keys((2, 300)) - {"run-3/reward_function.py"}, RECORDS, "best",
     "the run lacks run-3/reward_function.py"),
])
def test_what_is_missing_is_named(keys, records, choice, message):
    with pytest.raises(ModelUploadError, match=message.replace("(", r"\(")):
        plan_upload(LAYOUT, keys, records, choice, "up")
