"""Interrupted DeepRacer runs in their bucket: the record a spot node's handler leaves, and
the chain of model prefixes a run grows as it is resumed (issue 17).

A spot node's interruption handler (infra/bootstrap/spot.py) writes `<prefix>/interruption.json`
when its cloud takes the node back: the run id, the model prefix, the last checkpoint the
trainer uploaded (`model/deepracer_checkpoints.json`) and its iteration. A resume starts the
run again as DRfC's `dr-increment-training` does, under a new prefix whose `pretrained` is the
interrupted one, and links the two: `<new>/resumed-from.json` names the interrupted prefix
and `resumed_to` is added to the interrupted record. Everything here reads and writes through
training.storage, with the endpoint `storage.environment()` names.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace

from training import storage
from training.deepracer import bucket_io
from training.deepracer.layout import INTERRUPTION_RECORD, RESUMED_FROM
from training.deepracer.metrics import Iteration, RunMetrics, load_run
from training.deepracer.simtrace import SimtraceIteration

MAX_CHAIN = 100  # prefixes followed back before a loop in the links is assumed


class InterruptionError(storage.StorageError):
    """No record where one is needed, or a record that says the run cannot be resumed."""


@dataclass(frozen=True)
class Interruption:
    """What the node's handler recorded (and, once resumed, where the run went on)."""

    run_id: int
    model_prefix: str
    checkpoint: str | None
    iteration: int | None
    node: str = ""
    notice: str = ""
    resumed_to: str | None = None
    # The prefix the handler prepared the resume under: the node gives the run its replicas
    # back there at its next boot (infra/bootstrap/spot.py), or `dr resume` starts it there.
    prepared: str | None = None


def _record_url(bucket_url: str, prefix: str, name: str = INTERRUPTION_RECORD) -> str:
    return storage.join(bucket_url, f"{prefix}/{name}")


def read_interruption(bucket_url: str, prefix: str) -> Interruption | None:
    """The interruption record of a model prefix; None when the run was never interrupted."""
    url = _record_url(bucket_url, prefix)
    data = bucket_io.read_object(url)
    if data is None:
        return None
    try:
        values = json.loads(data)
        return Interruption(
            run_id=int(values["run_id"]),
            model_prefix=str(values["model_prefix"]),
            checkpoint=values.get("checkpoint"),
            iteration=values.get("iteration"),
            node=str(values.get("node", "")),
            notice=str(values.get("notice", "")),
            resumed_to=values.get("resumed_to"),
            prepared=values.get("prepared"),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise InterruptionError(f"{url}: not an interruption record ({error})") from None


def find_interrupted(bucket_url: str) -> list[Interruption]:
    """Every interrupted run of the bucket not yet resumed (model prefixes of one level, as
    DRfC names them), by prefix."""
    fs, root = storage.filesystem(bucket_url)
    try:
        found = fs.glob(f"{root}/*/{INTERRUPTION_RECORD}")
    except FileNotFoundError:
        return []
    except Exception as error:
        raise storage.StorageError(f"{bucket_url}: could not list ({error})") from None
    records = []
    for path in sorted(found):
        prefix = path.removeprefix(f"{root}/").removesuffix(f"/{INTERRUPTION_RECORD}")
        record = read_interruption(bucket_url, prefix)
        if (
            record is not None
            and record.resumed_to is None
            and not _resumed_at_boot(bucket_url, record)
        ):
            records.append(record)
    return records


def _resumed_at_boot(bucket_url: str, record: Interruption) -> bool:
    """The node came back and its run trains under the prepared prefix (it holds a model)."""
    return bool(record.prepared) and bool(
        bucket_io.list_keys(bucket_url, f"{record.prepared}/model")
    )


def resumed_from(bucket_url: str, prefix: str) -> str | None:
    """The interrupted prefix a resumed prefix continues, None for a run started afresh."""
    data = bucket_io.read_object(_record_url(bucket_url, prefix, RESUMED_FROM))
    return json.loads(data)["model_prefix"] if data is not None else None


def chain(bucket_url: str, prefix: str) -> list[str]:
    """The prefixes one run trained under, first to `prefix`, following the resume links."""
    prefixes = [prefix]
    while (previous := resumed_from(bucket_url, prefixes[0])) is not None:
        if previous in prefixes or len(prefixes) >= MAX_CHAIN:
            raise InterruptionError(
                f"{bucket_url}/{prefix}: the {RESUMED_FROM} links loop back to {previous}"
            )
        prefixes.insert(0, previous)
    return prefixes


def link(bucket_url: str, record: Interruption, new_prefix: str) -> None:
    """Record that `record`'s run goes on under `new_prefix`, on both prefixes."""
    resumed = {**asdict(record), "resumed_to": new_prefix}
    bucket_io.write_objects(
        bucket_url,
        {
            f"{new_prefix}/{RESUMED_FROM}": json.dumps(asdict(record)).encode(),
            f"{record.model_prefix}/{INTERRUPTION_RECORD}": json.dumps(resumed).encode(),
        },
    )


def resumable(bucket_url: str, prefix: str) -> Interruption:
    """The record of `prefix`, if its run can be resumed now; otherwise why not."""
    record = read_interruption(bucket_url, prefix)
    if record is None:
        raise InterruptionError(
            f"{bucket_url}/{prefix} has no {INTERRUPTION_RECORD}: the run was not interrupted"
            " by a spot notice (`trackday dr status` lists the interrupted runs)"
        )
    if record.resumed_to:
        raise InterruptionError(
            f"{bucket_url}/{prefix} was already resumed as {record.resumed_to}:"
            f" resume that one if it was interrupted too"
        )
    if _resumed_at_boot(bucket_url, record):
        raise InterruptionError(
            f"{bucket_url}/{prefix} was resumed by its node at its next boot as {record.prepared}"
        )
    if record.checkpoint is None:
        raise InterruptionError(
            f"{bucket_url}/{prefix} was interrupted before its first checkpoint: start it again"
            " (`trackday dr start-training --wipe`)"
        )
    return record


def split_run_url(url: str) -> tuple[str, str]:
    """(bucket URL, model prefix) of a run's URL: `s3://bucket/a/b` -> (`s3://bucket`, `a/b`);
    a local folder's parent is taken as its bucket."""
    url = url.rstrip("/")
    if "://" in url:
        scheme, rest = url.split("://", 1)
        bucket, _, prefix = rest.partition("/")
        return f"{scheme}://{bucket}", prefix
    parent, _, name = url.rpartition("/")
    return parent or ".", name


def load_chain(url: str) -> tuple[list[str], RunMetrics]:
    """The metrics of a run over every prefix it trained under (resumes after spot
    interruptions), as one run: each prefix's iterations numbered on from the last one
    before it. Returns the prefixes, first to last, and the joined metrics."""
    if url.endswith((".tar.gz", ".tgz")) or os.path.isfile(url):
        return [url], load_run(url)  # a log download, never a resumed prefix
    bucket_url, prefix = split_run_url(url)
    prefixes = chain(bucket_url, prefix) if prefix else [prefix]
    parts = [load_run(storage.join(bucket_url, p)) for p in prefixes[:-1]] + [load_run(url)]
    joined = parts[-1]
    iterations: list[Iteration] = []
    traces: list[SimtraceIteration] = []
    for part in parts:
        start = iterations[-1].number + 1 if iterations else None
        iterations += _renumbered(part.iterations, start, "number")
        start = traces[-1].iteration + 1 if traces else None
        traces += _renumbered(part.simtrace, start, "iteration")
    evaluations = [e for part in parts for e in part.evaluations]
    return prefixes, replace(
        joined, iterations=iterations, simtrace=traces, evaluations=evaluations
    )


def _renumbered(items: list, start: int | None, field: str) -> list:
    """`items` numbered on from `start` (unchanged when None), keeping their spacing."""
    if start is None or not items:
        return list(items)
    offset = start - getattr(items[0], field)
    return [replace(item, **{field: getattr(item, field) + offset}) for item in items]
