"""What the runs a stack's bucket holds have cost so far: each run's hours x the stack's price
per hour (costs.py). Only runs whose duration the bucket records are counted, and the page
names them:

- a DonkeyCar run: the seconds per phase its manifest records (training/donkeycar/train.py
  `Phases`; `fit` is inside `train` and not added again). A failed run writes no manifest and
  is not counted; nor is the time before the trainer started (image pull, node start).
- a DeepRacer run: from its `training_params.yaml`, written just before the services start,
  to the last change of its `TrainingMetrics*.json`, which the workers rewrite after every
  episode: a live run's hours so far. The simulator's own times are simulation clock, not
  wall clock (deepracer-utils' sample-drfc logs start near 0), so they are not used.

The machines bill while they are on, run or no run: this is the runs' share, not the bill.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from trackday.dashboard import deepracer_runs, donkey_runs
from trackday.dashboard.costs import Price
from training import storage
from training.deepracer.layout import RunLayout

NOT_ADDED = {"fit"}  # phases measured inside another phase


@dataclass(frozen=True)
class RunTime:
    kind: str  # DonkeyCar | DeepRacer
    name: str
    hours: float


@dataclass(frozen=True)
class Spend:
    runs: list[RunTime]
    cost: float | None  # None: the stack has no price

    @property
    def hours(self) -> float:
        return sum(r.hours for r in self.runs)


def donkey_times(runs_url: str) -> list[RunTime]:
    found = []
    for run in donkey_runs.list_runs(runs_url):
        seconds = [v for k, v in run.seconds.items() if k not in NOT_ADDED]
        if seconds:
            found.append(RunTime("DonkeyCar", run.run_id, sum(seconds) / 3600))
    return found


def _modified(info: dict) -> datetime | None:
    """An object's last change as each fsspec backend lists it (s3fs LastModified, adlfs
    last_modified, gcsfs updated, the local filesystem mtime)."""
    for key in ("LastModified", "last_modified"):
        if isinstance(info.get(key), datetime):
            value = info[key]
            return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(info.get("updated"), str):
        return datetime.fromisoformat(info["updated"].replace("Z", "+00:00"))
    if isinstance(info.get("mtime"), int | float):
        return datetime.fromtimestamp(info["mtime"], UTC)
    return None


def deepracer_time(bucket_url: str, prefix: str) -> RunTime | None:
    layout = RunLayout(prefix)
    fs, root = storage.filesystem(bucket_url)
    try:
        started = _modified(fs.info(f"{root}/{layout.training_params}"))
        listed = fs.ls(f"{root}/{layout.metrics_prefix}", detail=True)
    except FileNotFoundError:
        return None
    ends = [
        _modified(entry)
        for entry in listed
        if entry["name"].rsplit("/", 1)[-1].startswith("TrainingMetrics")
    ]
    ends = [e for e in ends if e is not None]
    if started is None or not ends:
        return None
    return RunTime("DeepRacer", prefix, max(0.0, (max(ends) - started).total_seconds() / 3600))


def stack_spend(bucket_url: str, runs_url: str, price: Price | None, deepracer: bool) -> Spend:
    """The known runs of one source (with the stack's environment in force)."""
    runs = donkey_times(runs_url)
    if deepracer:
        for prefix in deepracer_runs.model_prefixes(bucket_url):
            found = deepracer_time(bucket_url, prefix)
            if found is not None:
                runs.append(found)
    hours = Spend(runs, None).hours
    return Spend(runs, price.spent(hours) if price is not None else None)
