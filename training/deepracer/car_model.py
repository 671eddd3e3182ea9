"""The model package a physical DeepRacer car loads, built from a run's bucket.

What goes in it is what DRfC's `dr-upload-car-zip` (scripts/upload/upload-car.sh, 6.x) packs:
the SageMaker container's /opt/ml/model, tarred from inside, which the trainer (simapp
training_worker.py and tensorflow_model.py, v6.0.4) fills with `model_metadata.json` and
`agent/model.pb`, the frozen graph of the best checkpoint. DeepRacer on AWS hands out the same
folder as `physicalmodel-<name>.tar.gz`. trackday builds it from the bucket instead of a running
container, so any checkpoint whose frozen graph the trainer kept (`model/model_<n>.pb`, one
per checkpoint) can be packed, after training too.

What the car does with it (aws-deepracer-systems-pkg model_loader_node.py): extract the
archive, take the only `.pb` file anywhere in it (it refuses an archive holding more than one),
read `model_metadata.json` beside the archive's root for the sensors and the training
algorithm, and convert the graph with OpenVINO's model optimizer, feeding
`main_level/agent/<main|policy>/online/network_0/<SENSOR>/<SENSOR>` with a 160x120 image.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from training import storage
from training.deepracer import bucket_io

CAR_ARCHIVE = "carfile.tar.gz"  # the name DRfC uploads under DR_UPLOAD_S3_PREFIX
GRAPH_MEMBER = "agent/model.pb"
METADATA_MEMBER = "model_metadata.json"
# What the car's model loader accepts (aws-deepracer-systems-pkg constants.py).
CAR_SENSORS = {
    "observation",
    "FRONT_FACING_CAMERA",
    "LEFT_CAMERA",
    "STEREO_CAMERAS",
    "LIDAR",
    "SECTOR_LIDAR",
}
CAR_ALGORITHMS = {"clipped_ppo", "sac"}
_GRAPH = re.compile(r"model_(\d+)\.pb$")
_CHECKPOINT = re.compile(r"^(\d+)_Step-\d+\.ckpt")


class CarModelError(ValueError):
    """The run cannot give the car a model; says what is missing and how to fix it."""


@dataclass(frozen=True)
class CarModel:
    checkpoint: int
    archive: bytes
    metadata: dict


def _checkpoint_number(run_url: str, which: str) -> int:
    record = bucket_io.read_json(storage.join(run_url, "model/deepracer_checkpoints.json"))
    entry = record.get(f"{which}_checkpoint") or {}
    match = _CHECKPOINT.match(str(entry.get("name", "")))
    if not match:
        raise CarModelError(
            f"{run_url}/model/deepracer_checkpoints.json names no {which} "
            "checkpoint (the trainer writes it after the first evaluation); "
            "pass --checkpoint N"
        )
    return int(match.group(1))


def check_metadata(metadata: dict, where: str) -> None:
    """Refuse what the car's model loader refuses, before anything is written."""
    sensors = metadata.get("sensor", ["observation"])
    unknown = sorted(set(sensors) - CAR_SENSORS) if isinstance(sensors, list) else [sensors]
    if unknown:
        raise CarModelError(
            f"{where}: sensor {unknown} is not one the car knows ({', '.join(sorted(CAR_SENSORS))})"
        )
    algorithm = metadata.get("training_algorithm", "clipped_ppo")
    if algorithm not in CAR_ALGORITHMS:
        raise CarModelError(
            f"{where}: training_algorithm {algorithm!r}: the car loads "
            f"{' or '.join(sorted(CAR_ALGORITHMS))} models"
        )
    if not metadata.get("action_space"):
        raise CarModelError(
            f"{where}: no action_space; the car maps the network's outputs to actions with it"
        )


def _archive(graph: bytes, metadata: bytes) -> bytes:
    """tar.gz of model_metadata.json and agent/model.pb, byte-for-byte reproducible."""
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as packed,
        tarfile.open(fileobj=packed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for name, content in ((METADATA_MEMBER, metadata), (GRAPH_MEMBER, graph)):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o644, 0
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def build_car_model(run_url: str, checkpoint: int | str = "best") -> CarModel:
    """The package for `checkpoint` (a number, "best" or "last") of the run at `run_url`."""
    run_url = run_url.rstrip("/")
    number = checkpoint if isinstance(checkpoint, int) else _checkpoint_number(run_url, checkpoint)
    graph = bucket_io.read_object(storage.join(run_url, f"model/model_{number}.pb"))
    if graph is None:
        kept = sorted(
            int(m.group(1))
            for key in bucket_io.list_keys(run_url, "model")
            if (m := _GRAPH.search(key))
        )
        raise CarModelError(
            f"{run_url}/model/model_{number}.pb: no frozen graph for checkpoint "
            f"{number}; the run keeps {kept or 'none'}"
        )
    raw = bucket_io.read_object(storage.join(run_url, "model", METADATA_MEMBER))
    if raw is None:
        raise CarModelError(
            f"{run_url}/model/{METADATA_MEMBER}: missing; the trainer copies "
            "it there when training starts"
        )
    try:
        metadata = json.loads(raw)
    except ValueError as error:
        raise CarModelError(f"{run_url}/model/{METADATA_MEMBER}: not JSON ({error})") from None
    check_metadata(metadata, f"{run_url}/model/{METADATA_MEMBER}")
    return CarModel(number, _archive(graph, raw), metadata)


def destination(out: str) -> str:
    """A folder or prefix gets DRfC's `carfile.tar.gz`; a name ending .tar.gz is kept."""
    if out.endswith(".tar.gz"):
        return out
    return storage.join(out, CAR_ARCHIVE)


def write_car_model(model: CarModel, out: str) -> str:
    """Write the package to a local path or a bucket URL; returns where it went."""
    target = destination(out)
    if "://" in target and not target.startswith("file://"):
        bucket, _, key = target.partition("://")[2].partition("/")
        bucket_io.write_objects(f"{target.partition('://')[0]}://{bucket}", {key: model.archive})
    else:
        path = Path(target.removeprefix("file://")).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(model.archive)
    return target
