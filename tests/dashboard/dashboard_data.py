"""Runs for the dashboard tests, written into a real S3 server as their writers write them.

DonkeyCar: the trainer's own writer functions (training/donkeycar/train.py: plot_loss,
upload_outputs, mark_complete, the failure record, latest.json) on results and a manifest of the
shape run() builds; running the real trainer (TensorFlow) would cost minutes per run and the
files are the same. DeepRacer: tests/training/deepracer/dr_data.py's simulator-format metrics and
simtrace, uploaded through boto3, plus an MP4 that ffmpeg encodes (H.264, as the simulator's).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from tests import dr_samples
from tests.servers import S3Server
from tests.training.deepracer import dr_data
from training import storage
from training.donkeycar import train

WORLD = "2022_april_open_ccw"  # a track in ../shared/tracks


def _manifest(run_id: str, epochs: int, history: dict) -> dict:
    return {
        "run_id": run_id,
        "data": "s3://bucket/tubs/abc-data.tar.zst",
        "started": "2026-11-30T10:00:00+00:00",
        "model_type": "linear",
        "overrides": {},
        "versions": {"donkeycar": "5.3.0", "tensorflow": "2.15.1", "python": "3.11.2", "gpus": "1"},
        "archive": {
            "tubs": {"tub_1": 180, "tub_2": 120},
            "payload_sha256": "0" * 64,
            "created": "2026-11-30T09:00:00+00:00",
        },
        "records": {
            "tubs": {"tub_1": 180, "tub_2": 120},
            "skipped": 0,
            "training": 240,
            "validation": 60,
        },
        "best_val_loss": min(history["val_loss"]),
        "constant_predictor_loss": 0.5,
    }


def donkey_run(
    runs_url: str, run_id: str, epochs: int, work: Path, *, outcome: str = "complete"
) -> None:
    """A run of `epochs` epochs: "complete", "failed", or "running": the trainer is uploading
    (its first output, history.json, is there; the model and COMPLETE are not yet)."""
    run_url = storage.join(runs_url, run_id)
    if outcome == "failed":
        train._record_failure(run_url, RuntimeError("donkeycar's training wrote no model"))
        return
    history = {
        "loss": [1.0 / (e + 1) for e in range(epochs)],
        "val_loss": [1.2 / (e + 1) for e in range(epochs)],
    }
    results = work / run_id / outcome
    results.mkdir(parents=True)
    (results / "history.json").write_text(json.dumps(history, indent=2))
    if outcome == "running":
        train.upload_outputs(results, run_url)
        return
    (results / "pilot.h5").write_bytes(b"keras model")
    (results / "pilot.tflite").write_bytes(b"tflite model")
    train.plot_loss(history, results / "loss.png")
    manifest = _manifest(run_id, epochs, history)
    manifest["outputs"] = train.upload_outputs(results, run_url)
    manifest["seconds"] = {
        "fetch_extract": 1.5,
        "check": 0.2,
        "configure": 0.1,
        "train": 42.0,
        "report": 0.4,
        "upload": 0.8,
        "fit": 40.0,
    }
    train.mark_complete(run_url, manifest, work / run_id)
    storage.write_text(
        storage.join(runs_url, train.LATEST), json.dumps({"run_id": run_id, "url": run_url})
    )


def tiny_mp4(path: Path) -> Path | None:
    """One second of test pattern, H.264 in MP4 with its index first; None without ffmpeg."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return None
    subprocess.run(
        [
            ffmpeg,
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=10",
            "-t",
            "1",
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-movflags",
            "+faststart",
            str(path),
        ],
        check=True,
    )
    return path


def console_trainer_log() -> Path:
    """The DeepRacer console's SageMaker log of deepracer-utils' sample (28 iterations)."""
    folder = dr_samples.logs_dir() / "sample-console-logs" / "logs" / "training"
    return next(folder.glob("*-sagemaker.log"))


def upload_folder(server: S3Server, bucket: str, folder: Path, prefix: str = "") -> None:
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        key = path.relative_to(folder).as_posix()
        server.put(bucket, f"{prefix}/{key}" if prefix else key, path.read_bytes())


def deepracer_run(server: S3Server, bucket: str, prefix: str, work: Path) -> Path | None:
    """dr_data's run (2 workers, 6 iterations) with its params, reward function, a trainer log
    where `trackday dr stop-training` saves it (the console's real one) and an MP4;
    returns the MP4 when ffmpeg could make one."""
    folder = work / "dr"
    dr_data.write_run(folder, prefix)
    (folder / prefix / "training_params.yaml").write_text(f'WORLD_NAME: "{WORLD}"\n')
    (folder / prefix / "reward_function.py").write_text(dr_data.CAREFUL_REWARD)
    logs = folder / prefix / "logs" / "training"
    logs.mkdir(parents=True)
    shutil.copy(console_trainer_log(), logs / "trackday-run-1-sagemaker.log")
    video = tiny_mp4(work / "0-video.mp4")
    if video:
        (folder / prefix / "mp4").mkdir()
        shutil.copy(video, folder / prefix / "mp4" / "evaluation-0.mp4")
    upload_folder(server, bucket, folder)
    return video


def append_iteration(server: S3Server, bucket: str, prefix: str) -> None:
    """One more iteration in worker 0's TrainingMetrics.json, as the simulator appends it."""
    key = f"{prefix}/metrics/TrainingMetrics.json"
    body = json.loads(server.client().get_object(Bucket=bucket, Key=key)["Body"].read())
    rows = body["metrics"]
    number = max(r["episode"] for r in rows)
    for _ in range(dr_data.EPISODES):
        number += 1
        rows.append(dr_data.episode("training", number, 0, 80.0, 90.0, 9000))
    for trial in range(1, dr_data.TRIALS + 1):
        rows.append(dr_data.episode("evaluation", number, trial, 60.0, 100, 12_000))
    server.put(bucket, key, json.dumps(body).encode())
