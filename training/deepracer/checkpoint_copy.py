"""An interrupted run's checkpoint copied from another stack's bucket into this one's, so that
`trackday dr resume --from-stack` can go on with it where the spot capacity is gone (issue 17).

What the simulator's trainer reads of a `pretrained` prefix (deepracer-simapp
`bundle/markov/training_worker.py`: a `Checkpoint` over `<prefix>/model/`, then
`S3BotoDataStore.load_from_store`): `deepracer_checkpoints.json` (which checkpoint is best and
which last), rl_coach's `.coach_checkpoint` (which it rewrites to name the chosen checkpoint:
so the pretrained bucket must be one the trainer writes to, this stack's), and the TensorFlow
files of the checkpoint, `<name>.index`, `<name>.meta`, `<name>.data-*`. Those files, for the
best and the last checkpoint, are copied under the same model prefix in this bucket, with the
interruption record (its `prepared` dropped: that prefix is in the other bucket) and
`copied-from.json` naming where they came from; the resume then goes on as in one bucket.

The other bucket is read as untrusted: checkpoint names must look like the trainer's
(`<iteration>_Step-<step>.ckpt`), only keys directly under `model/` are copied, each object
and the whole copy have a size limit, and nothing is written outside the one prefix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, replace

from training import storage
from training.deepracer import bucket_io, interruption
from training.deepracer.layout import INTERRUPTION_RECORD

COPIED_FROM = "copied-from.json"
CHECKPOINTS_JSON = "deepracer_checkpoints.json"
COACH_CHECKPOINT = ".coach_checkpoint"
CHECKPOINT_NAME = re.compile(r"[0-9]+_Step-[0-9]+\.ckpt")
PREFIX_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# A DeepRacer checkpoint is tens of MB (the network's weights); these bound a hostile bucket.
MAX_OBJECT_BYTES = 2 << 30
MAX_TOTAL_BYTES = 4 << 30


class CopyError(storage.StorageError):
    """The other bucket's run cannot be copied: the message says what is wrong."""


def checkpoint_keys(
    bucket_url: str, prefix: str, endpoint: storage.Endpoint, max_total: int = MAX_TOTAL_BYTES
) -> dict[str, int]:
    """The keys (relative to `<prefix>/model/`) the trainer needs, with their sizes; refuses
    names that are not the trainer's and sizes over the limits."""
    model = f"{prefix}/model"
    listed = bucket_io.read_object(
        storage.join(bucket_url, f"{model}/{CHECKPOINTS_JSON}"), endpoint=endpoint
    )
    if listed is None:
        raise CopyError(f"{bucket_url}/{model}: no {CHECKPOINTS_JSON}, so no checkpoint to copy")
    try:
        names = {
            json.loads(listed)[kind]["name"] for kind in ("best_checkpoint", "last_checkpoint")
        }
    except (ValueError, KeyError, TypeError) as error:
        raise CopyError(f"{bucket_url}/{model}/{CHECKPOINTS_JSON}: unreadable ({error})") from None
    bad = sorted(str(n) for n in names if not CHECKPOINT_NAME.fullmatch(str(n)))
    if bad:
        raise CopyError(
            f"{bucket_url}/{model}/{CHECKPOINTS_JSON} names {bad}: not checkpoint names of the"
            " trainer (<iteration>_Step-<step>.ckpt); refusing to copy"
        )
    fs, root = storage.filesystem(storage.join(bucket_url, model), endpoint=endpoint)
    try:
        sizes = {
            path.removeprefix(f"{root}/"): int(info.get("size") or 0)
            for path, info in fs.find(root + "/", detail=True).items()
        }
    except Exception as error:
        raise CopyError(f"{bucket_url}/{model}: could not list ({error})") from None
    wanted = {
        key: size
        for key, size in sizes.items()
        if key in (CHECKPOINTS_JSON, COACH_CHECKPOINT)
        or ("/" not in key and any(key.startswith(f"{name}.") for name in names))
    }
    for key, size in wanted.items():
        if size > MAX_OBJECT_BYTES:
            raise CopyError(f"{bucket_url}/{model}/{key}: {size} bytes, over {MAX_OBJECT_BYTES}")
    if sum(wanted.values()) > max_total:
        raise CopyError(
            f"{bucket_url}/{model}: the checkpoint files hold {sum(wanted.values())} bytes,"
            f" over the {max_total} a DeepRacer checkpoint could need; refusing to copy"
        )
    missing = [n for n in names if not any(k.startswith(f"{n}.") for k in wanted)]
    if missing:
        raise CopyError(f"{bucket_url}/{model}: no files of checkpoint {sorted(missing)}")
    return wanted


Bucket = tuple[str, Mapping[str, str]]  # a bucket URL and its stack's storage environment


def copy_interrupted(
    source: Bucket, target: Bucket, prefix: str, max_total: int = MAX_TOTAL_BYTES
) -> interruption.Interruption:
    """Copy `prefix`'s interruption record and checkpoint from the `source` bucket into the
    `target` one; the record as it is in the target now."""
    (source_url, source_env), (target_url, target_env) = source, target
    if not PREFIX_NAME.fullmatch(prefix):
        raise CopyError(f"model prefix {prefix!r}: letters, digits, '.', '_' and '-' only")
    source_endpoint = storage.Endpoint.from_env(source_env)
    target_endpoint = storage.Endpoint.from_env(target_env)
    with storage.environment(source_env):
        record = interruption.resumable(source_url, prefix)
    if bucket_io.list_keys(target_url, prefix, endpoint=target_endpoint):
        raise CopyError(
            f"{target_url}/{prefix} exists already: resume it there (trackday dr resume"
            " without --from-stack), or remove it"
        )
    for key in checkpoint_keys(source_url, prefix, source_endpoint, max_total):
        storage.copy(
            storage.join(source_url, f"{prefix}/model/{key}"),
            storage.join(target_url, f"{prefix}/model/{key}"),
            source_endpoint=source_endpoint,
            target_endpoint=target_endpoint,
            sidecar=False,  # the trainer's own layout
        )
    copied = replace(record, model_prefix=prefix, prepared=None)
    origin = {"bucket": source_url, "model_prefix": prefix, "record": asdict(record)}
    bucket_io.write_objects(
        target_url,
        {
            f"{prefix}/{COPIED_FROM}": json.dumps(origin).encode(),
            f"{prefix}/{INTERRUPTION_RECORD}": json.dumps(asdict(copied)).encode(),
        },
        endpoint=target_endpoint,
    )
    return copied
