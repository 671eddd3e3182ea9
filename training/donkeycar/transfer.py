"""The model a run starts from (`--transfer`, as `donkey train --transfer`): a local one, or
one in the bucket; and, the same way, the run's `--myconfig` file.

donkeycar's `train()` loads it with `kl.load(path)` before fitting (5.4.0 then freezes the
layers up to `flattened` when FREEZE_LAYERS is set: `donkeycar/pipeline/training.py`). The
kinds are the ones its Keras loader reads: a `.h5` or `.keras` file, a `.savedmodel`
folder; a `.tflite` cannot be trained further.

In the bucket (`trackday donkey submit --transfer`), the URL names one object or a folder
of objects, each written by training.storage with its checksum sidecar (an upload by
`submit`, or a finished run's outputs). Every file is downloaded and verified against its
sidecar, and names read from the listing must stay inside the model's folder here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from training import storage
from training.donkeycar.checks import TrainerError

MODEL_SUFFIXES = (".h5", ".keras", ".savedmodel")


def check_model_name(name: str, given: str) -> None:
    """Refuse a model whose kind donkeycar's Keras loader cannot train from."""
    suffix = PurePosixPath(name).suffix
    if suffix not in MODEL_SUFFIXES:
        raise TrainerError(
            f"--transfer {given}: {suffix or 'no'} file extension; give a .h5 or .keras "
            "model file or a .savedmodel folder (a .tflite cannot be trained further)"
        )


@dataclass(frozen=True)
class StartingModel:
    """The transfer model on this machine, and what the run manifest says about it."""

    path: Path
    record: dict[str, Any]


def starting_model(given: str | None, work: Path) -> StartingModel | None:
    """The model to pass to donkeycar's `train()`, downloaded into `work` from a bucket."""
    if not given:
        return None
    if "://" not in given:
        path = Path(given)
        check_model_name(path.name, given)
        if not path.exists():
            raise TrainerError(f"--transfer {given}: no such model file")
        return StartingModel(path, {"source": str(path), "model": path.name})
    url = given.rstrip("/")
    name = url.rsplit("/", 1)[-1]
    check_model_name(name, given)
    digests = _download(url, work / name)
    return StartingModel(work / name, {"source": url, "model": name, "sha256": digests})


def _download(url: str, dest: Path) -> dict[str, str]:
    """Every file of the model at `url` into `dest`; their sha256 by name, as a run's outputs
    are listed (`pilot.keras`, `pilot.savedmodel/saved_model.pb`)."""
    listed = storage.list_files(url)
    if listed == [url]:  # one object: a .h5 or .keras file
        return {dest.name: download_verified(url, dest, "--transfer")}
    prefix = url + "/"
    found = set(listed)
    sidecars = {u + storage.SIDECAR_SUFFIX for u in listed}
    files = [u for u in listed if u not in sidecars]
    if not files:
        raise TrainerError(
            f"--transfer {url}: no model there; give a model in the bucket (a run's "
            "`runs/donkeycar/<run id>/<model>`) or a model file"
        )
    digests = {}
    for file_url in files:
        rel = relative_name(file_url, prefix)
        if file_url + storage.SIDECAR_SUFFIX not in found:
            raise TrainerError(f"--transfer {file_url}: {_NO_SIDECAR}")
        digests[f"{dest.name}/{rel}"] = storage.download(file_url, dest.joinpath(*rel.parts))
    return digests


_NO_SIDECAR = (
    "no checksum sidecar (.sha256) beside it, so it cannot be verified; let "
    "`trackday donkey submit` upload it, or use a finished run's model"
)


def run_input(given: str | None, dest: Path, option: str) -> Path | None:
    """A file the run reads beside its data (`--myconfig`): a path, or a URL in the bucket,
    downloaded to `dest` and verified."""
    if not given or "://" not in given:
        return Path(given) if given else None
    download_verified(given, dest, option)
    return dest


def download_verified(url: str, dest: Path, option: str) -> str:
    """One object from the bucket, refused unless its checksum sidecar vouches for it."""
    if not storage.exists(url):
        raise TrainerError(f"{option} {url}: no such object in the bucket")
    if storage.checksum(url) is None:
        raise TrainerError(f"{option} {url}: {_NO_SIDECAR}")
    return storage.download(url, dest, progress=False)


def relative_name(file_url: str, prefix: str) -> PurePosixPath:
    """A listed object's name inside the model folder, refused if it could leave it."""
    rel = file_url.removeprefix(prefix)
    parts = rel.split("/")
    if rel == file_url or any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
        raise TrainerError(f"--transfer: the listing holds an unsafe name {file_url!r}; refusing")
    return PurePosixPath(*parts)
