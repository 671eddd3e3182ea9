"""training_params.yaml / evaluation_params.yaml: DRfC's keys and value formats."""

import yaml

from training.deepracer.layout import RunLayout
from training.deepracer.params import (
    Bucket,
    dump_params,
    evaluation_files,
    evaluation_params,
    training_files,
    training_params,
)
from training.deepracer.settings import DeepRacerSettings

BUCKET = Bucket(name="bucket", region="us-east-1", endpoint_url="http://127.0.0.1:9000")

# What DRfC's prepare-config.py writes for its template-run.env, endpoint set.
DRFC_DEFAULT_TRAINING = {
    "AWS_REGION": "us-east-1",
    "JOB_TYPE": "TRAINING",
    "KINESIS_VIDEO_STREAM_NAME": "",
    "METRICS_S3_BUCKET": "bucket",
    "S3_ENDPOINT_URL": "http://127.0.0.1:9000",
    "METRICS_S3_OBJECT_KEY": "rl-deepracer-sagemaker/metrics/TrainingMetrics.json",
    "MODEL_METADATA_FILE_S3_KEY": "custom_files/model_metadata.json",
    "REWARD_FILE_S3_KEY": "custom_files/reward_function.py",
    "ROBOMAKER_SIMULATION_JOB_ACCOUNT_ID": "Dummy",
    "NUM_WORKERS": "1",
    "SAGEMAKER_SHARED_S3_BUCKET": "bucket",
    "SAGEMAKER_SHARED_S3_PREFIX": "rl-deepracer-sagemaker",
    "SIMTRACE_S3_BUCKET": "bucket",
    "SIMTRACE_S3_PREFIX": "rl-deepracer-sagemaker",
    "TRAINING_JOB_ARN": "arn:Dummy",
    "BODY_SHELL_TYPE": "deepracer",
    "CAR_COLOR": "Red",
    "CAR_NAME": "FastCar",
    "RACE_TYPE": "TIME_TRIAL",
    "WORLD_NAME": "reinvent_base",
    "DISPLAY_NAME": "FastCar",
    "RACER_NAME": "FastCar",
    "REVERSE_DIR": "False",
    "ALTERNATE_DRIVING_DIRECTION": "False",
    "CHANGE_START_POSITION": "True",
    "ROUND_ROBIN_ADVANCE_DIST": "0.05",
    "START_POSITION_OFFSET": "0.0",
    "ENABLE_DOMAIN_RANDOMIZATION": "False",
    "MIN_EVAL_TRIALS": "5",
    "CAMERA_MAIN_ENABLE": "True",
    "CAMERA_SUB_ENABLE": "False",
    "BEST_MODEL_METRIC": "progress",
    "ENABLE_EXTRA_KVS_OVERLAY": "False",
}


def test_training_params_for_drfc_defaults():
    assert training_params(DeepRacerSettings(), BUCKET) == DRFC_DEFAULT_TRAINING


def test_training_params_yaml_text_is_quoted_like_drfc():
    text = dump_params(training_params(DeepRacerSettings(), Bucket(name="bucket")))
    assert text.startswith("---\n'ALTERNATE_DRIVING_DIRECTION': 'False'\n'AWS_REGION': ")
    assert "'NUM_WORKERS': '1'\n" in text and "'REVERSE_DIR': 'False'\n" in text
    assert "S3_ENDPOINT_URL" not in text  # on AWS the simulator uses the regional endpoint
    assert yaml.safe_load(text)["WORLD_NAME"] == "reinvent_base"


def test_object_avoidance_keys_and_fixed_positions():
    settings = DeepRacerSettings.model_validate(
        {
            "race_type": "OBJECT_AVOIDANCE",
            "workers": 3,
            "object_avoidance": {
                "object_positions": ["0.2,1", "0.6,-1"],
                "obstacle_type": "amazon_box_obstacle",
            },
        }
    )
    params = training_params(settings, BUCKET)
    assert params["OBJECT_POSITIONS"] == ["0.2,1", "0.6,-1"]
    assert params["NUMBER_OF_OBSTACLES"] == "2"  # positions decide the count, as in DRfC
    assert params["OBSTACLE_TYPE"] == "amazon_box_obstacle"
    assert params["NUM_WORKERS"] == "3"
    assert "NUMBER_OF_BOT_CARS" not in params
    text = dump_params(params)
    assert "'OBJECT_POSITIONS':\n- '0.2,1'\n- '0.6,-1'\n" in text


def test_head_to_bot_penalty_is_penalty_seconds():
    settings = DeepRacerSettings.model_validate(
        {
            "race_type": "HEAD_TO_BOT",
            "head_to_bot": {"number_of_bot_cars": 2, "bot_car_penalty": 3.5},
        }
    )
    params = training_params(settings, BUCKET)
    assert (params["NUMBER_OF_BOT_CARS"], params["PENALTY_SECONDS"]) == ("2", "3.5")
    assert params["IS_LANE_CHANGE"] == "False" and "OBSTACLE_TYPE" not in params


def test_evaluation_params_lists_and_keys():
    settings = DeepRacerSettings.model_validate(
        {"evaluation": {"save_mp4": True, "collision_penalty": 2.5}}
    )
    params = evaluation_params(settings, BUCKET, stamp="20260101120000")
    assert params["JOB_TYPE"] == "EVALUATION"
    assert params["MODEL_S3_PREFIX"] == ["rl-deepracer-sagemaker"]
    assert params["SIMTRACE_S3_PREFIX"] == ["rl-deepracer-sagemaker/evaluation-20260101120000"]
    assert params["METRICS_S3_OBJECT_KEY"] == [
        "rl-deepracer-sagemaker/metrics/evaluation/evaluation-20260101120000.json"
    ]
    assert params["MP4_S3_OBJECT_PREFIX"] == ["rl-deepracer-sagemaker/mp4"]
    assert (params["NUMBER_OF_TRIALS"], params["NUMBER_OF_RESETS"]) == ("3", "100")
    assert (params["IS_CONTINUOUS"], params["EVAL_CHECKPOINT"]) == ("True", "last")
    assert params["COLLISION_PENALTY"] == "2.5" and params["OFF_TRACK_PENALTY"] == "5.0"
    assert params["CAR_COLOR"] == ["Red"] and params["RESET_BEHIND_DIST"] == "1.0"


def test_head_to_model_appends_the_opponent():
    settings = DeepRacerSettings.model_validate(
        {
            "race_type": "HEAD_TO_MODEL",
            "model_prefix": "mine",
            "evaluation": {"opponent": {"model_prefix": "theirs", "car_name": "Rival"}},
        }
    )
    params = evaluation_params(settings, BUCKET, stamp="20261130120000")
    assert params["MODEL_S3_PREFIX"] == ["mine", "theirs"]
    assert params["DISPLAY_NAME"] == ["FastCar", "Rival"] == params["MODEL_NAME"]
    assert params["CAR_COLOR"] == ["Purple", "Orange"]
    # DRfC's keys for the opponent (scripts/evaluation/prepare-config.py)
    assert params["SIMTRACE_S3_PREFIX"] == ["mine/evaluation-20261130120000", "theirs"]
    assert params["METRICS_S3_OBJECT_KEY"] == [
        "mine/metrics/evaluation/evaluation-20261130120000.json",
        "theirs/metrics/EvaluationMetrics-1796040000.json",
    ]
    assert params["MP4_S3_BUCKET"] == []
    with_video = settings.model_copy(
        update={"evaluation": settings.evaluation.model_copy(update={"save_mp4": True})}
    )
    assert evaluation_params(with_video, BUCKET, "20261130120000")["MP4_S3_OBJECT_PREFIX"] == [
        "mine/mp4",
        "theirs/mp4",
    ]


def test_layout_keys():
    layout = RunLayout(model_prefix="m")
    assert layout.training_metrics(0) == "m/metrics/TrainingMetrics.json"
    assert layout.training_metrics(2) == "m/metrics/TrainingMetrics_2.json"
    assert layout.training_simtrace(4) == "m/training-simtrace/4-iteration.csv"
    assert layout.training_simtrace(4, worker=1, workers=2) == (
        "m/1/training-simtrace/4-iteration.csv"
    )
    assert layout.checkpoints_json == "m/model/deepracer_checkpoints.json"
    assert layout.ip_dir == "m/ip" and layout.run_reward_function == "m/reward_function.py"


def test_files_a_run_uploads(tmp_path):
    for name, text in (
        ("reward_function.py", "def reward_function(p):\n    return 1.0\n"),
        ("model_metadata.json", "{}"),
        ("hyperparameters.json", "{}"),
    ):
        (tmp_path / name).write_text(text)
    settings = DeepRacerSettings(model_prefix="m-1")
    files = training_files(settings, BUCKET, tmp_path)
    assert set(files) == {
        "custom_files/reward_function.py",
        "custom_files/model_metadata.json",
        "custom_files/hyperparameters.json",
        "m-1/reward_function.py",
        "m-1/training_params.yaml",
    }
    assert files["m-1/reward_function.py"] == files["custom_files/reward_function.py"]
    assert yaml.safe_load(files["m-1/training_params.yaml"])["SAGEMAKER_SHARED_S3_PREFIX"] == "m-1"
    evaluation = evaluation_files(settings, BUCKET, "20260101000000")
    assert list(evaluation) == ["m-1/evaluation_params.yaml"]
    assert yaml.safe_load(evaluation["m-1/evaluation_params.yaml"])["JOB_TYPE"] == "EVALUATION"
