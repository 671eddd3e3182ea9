"""Test data in the real formats: a DRfC folder, a run's bucket files, custom files.

Generated here (never copied from DRfC or the simulator); tracks are read from ../shared/tracks.
"""

import json
import random
from pathlib import Path

from training.deepracer.layout import RunLayout
from training.deepracer.metrics import SIMTRACE_COLUMNS

TRACKS = Path(__file__).resolve().parents[3] / ".." / "shared" / "tracks"
SYSTEM_ENV = """\
DR_CLOUD=aws
DR_AWS_APP_REGION=eu-west-1
DR_UPLOAD_S3_PROFILE=default
DR_UPLOAD_S3_BUCKET=<AWS_DR_BUCKET>
DR_LOCAL_S3_BUCKET=my-models
DR_LOCAL_S3_PROFILE=default
DR_GUI_ENABLE=False
DR_KINESIS_STREAM_NAME=
DR_CAMERA_SUB_ENABLE=True
DR_SIMAPP_SOURCE=awsdeepracercommunity/deepracer-simapp
DR_SIMAPP_VERSION=6.0.1-cpu
DR_WORKERS=4
# DR_TELEGRAF_HOST=telegraf
DR_CLOUD_WATCH_ENABLE=True
DR_DOCKER_STYLE=swarm
"""
RUN_ENV = """\
# my run
DR_RUN_ID=2
DR_WORLD_NAME="2022_april_open_ccw"
DR_RACE_TYPE=OBJECT_AVOIDANCE
DR_CAR_NAME='Speedy'
DR_CAR_COLOR=Blue
DR_DISPLAY_NAME=$DR_CAR_NAME
DR_RACER_NAME=${DR_CAR_NAME}-racer
DR_EVAL_NUMBER_OF_TRIALS=5
DR_EVAL_SAVE_MP4=True
DR_TRAIN_BEST_MODEL_METRIC=laptime
DR_TRAIN_MULTI_CONFIG=False
DR_TRAIN_RTF=1.5  # faster than real time
DR_LOCAL_S3_MODEL_PREFIX=speedy-3
DR_LOCAL_S3_PRETRAINED=True
DR_LOCAL_S3_PRETRAINED_PREFIX=speedy-2
DR_LOCAL_S3_CUSTOM_FILES_PREFIX=custom_files
DR_LOCAL_S3_MODEL_METADATA_KEY=$DR_LOCAL_S3_CUSTOM_FILES_PREFIX/model_metadata.json
DR_LOCAL_S3_REWARD_KEY=elsewhere/reward.py
DR_LOCAL_S3_METRICS_PREFIX=$DR_LOCAL_S3_MODEL_PREFIX/metrics
DR_UPLOAD_S3_PREFIX=$DR_LOCAL_S3_MODEL_PREFIX-1
DR_OA_NUMBER_OF_OBSTACLES=3
DR_OA_OBJECT_POSITIONS="0.2,1;0.5,-1"
DR_OA_OBSTACLE_TYPE=deepracer_box_obstacle
DR_SOMETHING_NEW=42
"""


def make_drfc(root, system=SYSTEM_ENV, run=RUN_ENV):
    root.mkdir(parents=True, exist_ok=True)
    (root / "system.env").write_text(system)
    (root / "run.env").write_text(run)
    files = root / "custom_files"
    files.mkdir(exist_ok=True)
    (files / "reward_function.py").write_text("def reward_function(params):\n    return 1.0\n")
    (files / "model_metadata.json").write_text('{"action_space": []}')
    (files / "hyperparameters.json").write_text('{"batch_size": 64}')
    (files / "notes.txt").write_text("scratch")
    return root


ITERATIONS, WORKERS, EPISODES, TRIALS = 6, 2, 10, 3


def episode(phase, number, trial, reward, progress, elapsed_ms):
    status = "Lap complete" if progress >= 100 else "Off track"
    return {
        "reward_score": round(reward),
        "metric_time": 1_000_000 + number,
        "start_time": 1_000_000,
        "elapsed_time_in_milliseconds": elapsed_ms,
        "episode": number,
        "trial": trial,
        "phase": phase,
        "completion_percentage": int(progress),
        "episode_status": status,
    }


def simtrace_rows(rng, iteration, episodes):
    """Steps as the simulator appends them: str() of each value, in its column order."""
    lines = [",".join(SIMTRACE_COLUMNS)]
    for number in episodes:
        final = min(100.0, 20.0 * (iteration + 1) + rng.uniform(0, 10))
        steps = 30
        for step in range(1, steps + 1):
            progress = final * step / steps
            done = step == steps
            status = ("lap_complete" if final >= 100 else "off_track") if done else "in_progress"
            values = [
                number,
                step,
                1.5 + step * 0.01,
                0.3,
                12.5,
                15.0,
                1.0,
                2,
                1.0,
                done,
                True,
                round(progress, 4),
                step,
                17.71,
                100.0 + step / 15,
                status,
                0.0,
                0,
                1_700_000_000.0 + step,
            ]
            lines.append(",".join(str(v) for v in values))
    return "\n".join(lines) + "\n"


def write_run(root, prefix="rl-deepracer-sagemaker", metric="progress"):
    rng = random.Random(7)
    layout = RunLayout(model_prefix=prefix)
    for worker in range(WORKERS):
        rows, number = [], 0
        for iteration in range(ITERATIONS):
            for _ in range(EPISODES):
                number += 1
                rows.append(
                    episode(
                        "training",
                        number,
                        0,
                        10 * iteration + rng.uniform(0, 5),
                        min(100, 15 * iteration + rng.uniform(0, 10)),
                        9000,
                    )
                )
            for trial in range(1, TRIALS + 1):
                progress = 100 if iteration >= 4 else 20 * (iteration + 1)
                rows.append(
                    episode(
                        "evaluation",
                        number,
                        trial,
                        50 + iteration,
                        progress,
                        15_000 - 500 * iteration - trial,
                    )
                )
            trace = root / layout.training_simtrace(iteration, worker, WORKERS)
            trace.parent.mkdir(parents=True, exist_ok=True)
            trace.write_text(
                simtrace_rows(rng, iteration, range(iteration * 5 + 1, iteration * 5 + 6))
            )
        path = root / layout.training_metrics(worker)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"metrics": rows, "version": 2, "best_model_metric": metric}))
    checkpoints = root / layout.checkpoints_json
    checkpoints.parent.mkdir(parents=True, exist_ok=True)
    checkpoints.write_text(
        json.dumps(
            {
                "best_checkpoint": {
                    "name": "5_Step-6000.ckpt",
                    "avg_eval_metric": 100.0,
                    "time_stamp": 812.3,
                },
                "last_checkpoint": {
                    "name": "6_Step-7200.ckpt",
                    "avg_eval_metric": 100.0,
                    "time_stamp": 901.7,
                },
            }
        )
    )
    return root / prefix


CAREFUL_REWARD = '''
import math


def reward_function(params):
    """Centre-line reward that reads every kind of param the simulator passes."""
    if params["is_offtrack"] or params["is_crashed"]:
        return 1e-3
    waypoints = params["waypoints"]
    prev_i, next_i = params["closest_waypoints"]
    dx = waypoints[next_i][0] - waypoints[prev_i][0]
    dy = waypoints[next_i][1] - waypoints[prev_i][1]
    direction = math.degrees(math.atan2(dy, dx))
    misalignment = abs((direction - params["heading"] + 180) % 360 - 180)
    reward = 1.0 - params["distance_from_center"] / (params["track_width"] / 2)
    if misalignment > 30:
        reward *= 0.5
    if params["objects_location"]:
        reward *= 0.5 if params["object_in_camera"] else 1.0
    return float(max(reward, 1e-3))
'''
METADATA = {
    "action_space": [{"steering_angle": a, "speed": 1.0} for a in (-30, 0, 30)],
    "sensor": ["FRONT_FACING_CAMERA"],
    "neural_network": "DEEP_CONVOLUTIONAL_NETWORK_SHALLOW",
    "training_algorithm": "clipped_ppo",
    "action_space_type": "discrete",
    "version": "5",
}
HYPERPARAMETERS = {
    "batch_size": 64,
    "lr": 0.0003,
    "num_epochs": 5,
    "loss_type": "huber",
    "exploration_type": "categorical",
    "discount_factor": 0.99,
}


def write_folder(folder: Path, reward=CAREFUL_REWARD, metadata=None, hyper=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "reward_function.py").write_text(reward)
    for name, data in (
        ("model_metadata.json", metadata or METADATA),
        ("hyperparameters.json", hyper or HYPERPARAMETERS),
    ):
        (folder / name).write_text(data if isinstance(data, str) else json.dumps(data))
    return folder
