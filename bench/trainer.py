"""Trainer overhead and training time against donkeycar's own `donkey train`, in one run.

Goals (issue 2), on a 13,000-record tub of 160x120 images, one epoch, CPU:
- everything but `model.fit` (fetch, extract, check, load, convert, upload) under 30 s;
- fetch-and-extract throughput, reported against reading the archive with `cat`;
- training time against `donkey train` on the same tub and config: ratio at most 1.0.

Run in the trainer's environment of the donkeycar version to measure (.venv-trainer for
5.3.0, .venv-trainer-5.4.0 for 5.4.0), with the operator's on PATH for the S3 server:
    PATH=.venv/bin:$PATH PYTHONPATH=. .venv-trainer/bin/python bench/trainer.py [--records N]
The archive is fetched from `rclone serve s3` on 127.0.0.1, and results go back to it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.servers import serve_s3
from training import storage
from training.donkeycar.archive import create_archive
from training.donkeycar.sample_tub import write_sample_tub

CONFIG = "MAX_EPOCHS = 1\nPRINT_MODEL_SUMMARY = False\nSHOW_PLOT = False\n"


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=13000)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each, best taken")
    args = parser.parse_args()
    python = sys.executable
    root_dir = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        car = root / "car"
        tub = write_sample_tub(car / "data", records=args.records)
        import donkeycar

        template = Path(donkeycar.__file__).parent / "templates" / "cfg_complete.py"
        (car / "config.py").write_text(template.read_text())
        (car / "myconfig.py").write_text(CONFIG)
        archive = root / "data.tar.zst"
        create_archive([tub], archive, config_dir=car)
        size_mb = archive.stat().st_size / 1e6

        t_cat = timed(["cat", str(archive)], dict(os.environ), root)

        bucket = "bench"
        donkey = str(Path(python).parent / "donkey")
        runs: list[tuple[float, dict, float]] = []
        with serve_s3(root / "s3") as s3:
            # rclone serves each folder as a bucket; made before the first request, the
            # server's listing cache sees it. Everything else goes through the S3 API.
            (s3.root / bucket).mkdir()
            os.environ.update(s3.env())
            env = {**os.environ, "PYTHONPATH": str(root_dir)}
            storage.upload(archive, f"s3://{bucket}/data.tar.zst", progress=False)
            # Alternate the two, so a busy spell of the machine hits both alike.
            for attempt in range(args.repeat):
                run_id = f"bench-{attempt}"
                t_ours = timed(
                    [python, "-m", "training.donkeycar.train", "--data",
                     f"s3://{bucket}/data.tar.zst", "--output", f"s3://{bucket}/runs",
                     "--run-id", run_id],
                    env, root,
                )  # fmt: skip
                manifest = json.loads(
                    storage.read_text(f"s3://{bucket}/runs/{run_id}/run-manifest.json")
                )
                # No --model: donkey train names the model as each version does (.keras on
                # 5.4.0, which refuses other extensions), as the trainer lets it.
                t_donkey = timed([donkey, "train", "--tub", str(tub)], dict(os.environ), car)
                runs.append((t_ours, manifest, t_donkey))
    t_ours, manifest, _ = min(runs, key=lambda run: run[0])
    t_donkey = min(run[2] for run in runs)
    seconds = manifest["seconds"]
    # Everything but model.fit, process start-up (importing TensorFlow) included.
    overhead = t_ours - seconds["fit"]
    fetch_mb_s = size_mb / seconds["fetch_extract"]
    cat_mb_s = size_mb / t_cat
    print(
        f"donkeycar {manifest['versions']['donkeycar']}, tensorflow "
        f"{manifest['versions']['tensorflow']}; tub: {args.records} records, archive "
        f"{size_mb:.1f} MB; phases (s): {json.dumps(seconds)}"
    )
    print(f"overhead (whole process but model.fit): {overhead:.1f} s (goal < 30 s)")
    print(
        f"fetch+extract from S3: {fetch_mb_s:.0f} MB/s; cat of the archive: {cat_mb_s:.0f} MB/s; "
        f"ratio {fetch_mb_s / cat_mb_s:.3f}"
    )
    print(f"trackday trainer, whole process (fetch, train, upload): {t_ours:.1f} s")
    print(f"donkey train, whole process (same tub and config):      {t_donkey:.1f} s")
    print(
        f"train phase / donkey train: {seconds['train'] / t_donkey:.3f} (goal <= 1.0); "
        f"whole process / donkey train: {t_ours / t_donkey:.3f}"
    )


if __name__ == "__main__":
    main()
