"""The trainer: one run of donkeycar's own training, from an archive URL to a run folder.

The same entrypoint runs on a laptop (`trackday donkey train --local`), in the GPU
container on every cloud, and in tests:

    python -m training.donkeycar.train --data URL --output URL [--model-type linear]
        [--set KEY=VALUE ...] [--run-id ID] [--skip-bad] [--transfer MODEL|URL]
        [--comment TEXT] [--myconfig FILE|URL] [--require-gpu]

It calls `donkeycar.pipeline.training.train`, the code `donkey train` runs (its
`donkeycar/management/base.py` `Train.run`), so a model behaves the same however it was
trained: the installed donkeycar names the model (`PilotDatabase.generate_model_name`:
`pilot_<date>_<n>.savedmodel` on 5.3.0, `.keras` on 5.4.0, `.h5` with SAVE_MODEL_AS_H5)
and the run keeps every file donkeycar writes into its models folder, with its names
(`.tflite`, `.trt`, `database.json`, 5.4.0's TensorBoard `logs/`). Results go under
`<output>/<run id>/`; the run is marked complete (a `COMPLETE` object, then
`<output>/latest.json`) only after every file was uploaded and verified, so a failed run
never replaces a good model. A run stopped by SIGTERM (`docker stop`: the node's spot
interruption handler, infra/bootstrap/spot.py) leaves `INTERRUPTED.txt` instead of
`FAILED.txt`, and its best model so far as a checkpoint (training/donkeycar/checkpoint.py):
run again with the same run id (the node does, when it comes back), it starts from there.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from training import storage
from training.donkeycar import checkpoint, latest
from training.donkeycar.archive import ArchiveError, ExtractedArchive, extract_archive
from training.donkeycar.car_config import load_car_config, parse_overrides
from training.donkeycar.checks import (
    TrainerError,
    check_framework,
    check_record_keys,
    check_tubs,
    constant_predictor_loss,
    require_gpu,
)
from training.donkeycar.fit import DonkeycarEvents, train_model
from training.donkeycar.movie import write_movie
from training.donkeycar.report import plot_loss, read_history
from training.donkeycar.transfer import run_input, starting_model

log = logging.getLogger("trackday.train")

COMPLETE = "COMPLETE"
LATEST = latest.LATEST
RUN_MANIFEST = "run-manifest.json"
FAILED = "FAILED.txt"
INTERRUPTED = "INTERRUPTED.txt"


class Interrupted(BaseException):
    """SIGTERM reached the trainer: its node is going away. A BaseException, as
    KeyboardInterrupt, so that no `except Exception` of a library swallows it."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Interrupted("stopped by SIGTERM (the node is going away)")


@dataclass
class Phases:
    """Wall-clock seconds per phase of the run, for the run manifest and the benchmarks."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        log.info("phase %s ...", name)
        try:
            yield
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 3)
            log.info("phase %s took %.1f s", name, self.seconds[name])


def fetch(data_url: str, dest: Path) -> ExtractedArchive:
    """Stream the archive into extraction, then check the whole object's checksum."""
    with storage.open_stream(data_url) as reader:
        extracted = extract_archive(reader, dest)
        while reader.read(1 << 20):  # the rest after the tar's end marker counts too
            pass
        reader.verify()
    return extracted


def _versions() -> dict[str, str]:
    import donkeycar
    import tensorflow as tf

    return {
        "donkeycar": donkeycar.__version__,
        "tensorflow": tf.__version__,
        "python": platform.python_version(),
        "gpus": str(len(tf.config.list_physical_devices("GPU"))),
    }


def upload_outputs(results: Path, run_url: str) -> dict[str, str]:
    """Upload every result, each verified; returns their sha256 by relative path."""
    return {
        path.relative_to(results).as_posix(): storage.upload(
            path, storage.join(run_url, path.relative_to(results).as_posix()), progress=False
        )
        for path in sorted(p for p in results.rglob("*") if p.is_file())
    }


def mark_complete(run_url: str, manifest: dict, work: Path) -> None:
    """Upload the run manifest, then the marker that says every output is in place."""
    manifest_path = work / RUN_MANIFEST
    manifest_path.write_text(json.dumps(manifest, indent=2))
    digest = storage.upload(manifest_path, storage.join(run_url, RUN_MANIFEST), progress=False)
    storage.write_text(storage.join(run_url, COMPLETE), digest + "\n")


def run(args: argparse.Namespace) -> str:
    """One training run; returns the run's URL."""
    run_id = args.run_id or f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
    run_url = storage.join(args.output, run_id)
    if storage.exists(storage.join(run_url, COMPLETE)):
        raise TrainerError(f"run {run_id} already exists at {run_url}: choose another --run-id")
    overrides = parse_overrides(args.set)
    if args.require_gpu:
        require_gpu()  # before the download: a CPU-only job fails in seconds
    phases = Phases()
    events = DonkeycarEvents()
    started = datetime.now(UTC)
    resumed = checkpoint.resume_point(run_url)
    if resumed:
        log.info("an earlier attempt was interrupted: starting from its checkpoint %s", resumed)
    models: Path | None = None
    with tempfile.TemporaryDirectory(prefix=f"trackday-{run_id}-", dir=args.work_dir) as tmp:
        work = Path(tmp)
        try:
            with phases("fetch_extract"):
                transfer = starting_model(resumed or args.transfer, work / "transfer")
                myconfig = run_input(args.myconfig, work / "myconfig.py", "--myconfig")
                extracted = fetch(args.data, work / "data")
            with phases("check"):
                scans = check_tubs(extracted, args.skip_bad)
            with phases("configure"):
                cfg = load_car_config(extracted.config_dir, work, overrides, myconfig)
                models = Path(cfg.MODELS_PATH)
                model_type = args.model_type or getattr(cfg, "DEFAULT_MODEL_TYPE", None)
                if not model_type:
                    raise TrainerError(
                        "the car config sets no DEFAULT_MODEL_TYPE: pass --model-type"
                    )
                check_framework(cfg, model_type)
                check_record_keys(scans, model_type)
            with phases("train"):
                model, validation = train_model(
                    cfg,
                    extracted.tubs,
                    model_type,
                    events,
                    transfer.path if transfer else None,
                    args.comment,
                )
            with phases("report"):
                # Everything donkeycar wrote (model, .tflite, .trt, database.json, logs/).
                results = Path(cfg.MODELS_PATH)
                history = read_history(results)
                (results / "history.json").write_text(json.dumps(history, indent=2))
                plot_loss(history, results / "loss.png")
            with phases("movie"):
                movie = model.with_suffix(".mp4")
                tflite = model.with_suffix(".tflite")
                frames = write_movie(cfg, model_type, tflite, validation, movie)
            manifest = {
                "run_id": run_id,
                "data": args.data,
                "started": started.isoformat(timespec="seconds"),
                "model_type": model_type,
                "model": model.name,
                "tflite": tflite.name,
                "movie": {"file": movie.name, "frames": frames} if frames else None,
                "overrides": {k: repr(v) for k, v in overrides.items()},
                "transfer": transfer.record if transfer else None,
                "resumed_from": resumed,
                "comment": args.comment,
                "versions": _versions(),
                "archive": extracted.manifest.__dict__ if extracted.manifest else "old format",
                "records": {
                    "tubs": {s.path.name: len(s.records) for s in scans},
                    "skipped": sum(len(s.bad_indexes) for s in scans),
                    **events.records,
                },
                "best_val_loss": min(history.get("val_loss", [float("nan")])),
                "constant_predictor_loss": constant_predictor_loss(scans, model_type),
            }
            with phases("upload"):
                manifest["outputs"] = upload_outputs(results, run_url)
            manifest["seconds"] = {**phases.seconds, "fit": events.fit_seconds}
            mark_complete(run_url, manifest, work)
        except BaseException as exc:
            if isinstance(exc, Interrupted) and models is not None:
                _keep_checkpoint(models, run_url)
            _record_failure(run_url, exc)
            raise
    latest.publish(
        args.output,
        {
            "run_id": run_id,
            "url": run_url,
            "started": started.isoformat(),
            "completed": datetime.now(UTC).isoformat(),
        },
    )
    log.info("phases: %s", json.dumps({**phases.seconds, "fit": events.fit_seconds}))
    return run_url


def _keep_checkpoint(models: Path, run_url: str) -> None:
    """The best model so far into the bucket, best effort: the marker matters more."""
    try:
        checkpoint.save(models, run_url)
    except Exception as error:
        log.warning("could not keep the checkpoint at %s: %s", run_url, error)


def _record_failure(run_url: str, exc: BaseException) -> None:
    """Leave the reason beside the partial results, best effort: the exit code is what counts.
    An interrupted run says so (INTERRUPTED.txt), a failed one FAILED.txt."""
    name = INTERRUPTED if isinstance(exc, Interrupted) else FAILED
    try:
        storage.write_text(storage.join(run_url, name), f"{type(exc).__name__}: {exc}\n")
    except Exception as write_error:  # the original error matters more than this one
        log.warning("could not record the failure at %s: %s", run_url, write_error)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m training.donkeycar.train",
        description="Train a DonkeyCar pilot with donkeycar's own training code.",
    )
    parser.add_argument(
        "--data", required=True, help="archive URL or path (.tar.zst or old .tar.gz)"
    )
    parser.add_argument(
        "--output", required=True, help="URL or folder; results go under <output>/<run id>/"
    )
    parser.add_argument(
        "--model-type",
        default=None,
        help="donkeycar model type (default: the config's DEFAULT_MODEL_TYPE)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a donkeycar setting",
    )
    parser.add_argument(
        "--run-id", default=None, help="name of the run (default: time stamp and random suffix)"
    )
    parser.add_argument(
        "--skip-bad", action="store_true", help="train without records that fail the checks"
    )
    parser.add_argument(
        "--work-dir", default=None, help="where to extract and train (default: a temporary folder)"
    )
    parser.add_argument(
        "--transfer",
        default=None,
        help="start from this model: a path, or a URL in the bucket (a file or a folder)",
    )
    parser.add_argument("--comment", default=None, help="comment for donkeycar's database.json")
    parser.add_argument(
        "--myconfig", default=None, help="use this file as myconfig.py (a path or a URL)"
    )
    parser.add_argument(
        "--require-gpu",
        action="store_true",
        help="fail at once when TensorFlow sees no GPU (every cloud job passes it)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TF_USE_LEGACY_KERAS is left as donkeycar leaves it (unset): 5.4.0 is written for the
    # Keras 3 of TensorFlow 2.19, and its categorical model fails under Keras 2.
    os.environ.setdefault("MPLBACKEND", "Agg")
    args = parse_args(argv)
    before = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        run_url = run(args)
    except (TrainerError, ArchiveError, storage.StorageError) as exc:
        print(f"trackday-train: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("trackday-train: interrupted; the run was not marked complete", file=sys.stderr)
        return 130
    except Interrupted as exc:
        print(f"trackday-train: {exc}; the run is marked INTERRUPTED", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, before)
    print(f"trackday-train: run complete: {run_url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
