"""The interrupted DeepRacer runs of a stack's bucket, for `trackday dr status` and `summary`.

Read from the bucket alone (training/deepracer/interruption.py), so they show even when the
spot capacity is gone and no manager answers: each run with the chain of model prefixes it
trained under, the checkpoint it stopped at, and the command that resumes it.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from infra.workloads.run_target import RunTarget
from trackday.failure import fail
from training import storage
from training.deepracer import interruption


def interrupted_table(target: RunTarget, stack: str) -> Table | None:
    """A table of the runs a spot notice interrupted and nobody resumed yet; None if none."""
    with storage.environment(target.storage_env):
        records = interruption.find_interrupted(target.bucket_url)
        chains = {
            r.model_prefix: interruption.chain(target.bucket_url, r.model_prefix) for r in records
        }
    if not records:
        return None
    table = Table(title="Interrupted DeepRacer runs (spot capacity taken back)")
    for column in ("run", "model prefixes", "last checkpoint", "iteration", "node", "resume with"):
        table.add_column(column, overflow="fold")
    for record in records:
        table.add_row(
            str(record.run_id),
            " -> ".join(chains[record.model_prefix]),
            record.checkpoint or "none",
            "-" if record.iteration is None else str(record.iteration),
            record.node or "-",
            (f"its node's next boot, as {record.prepared}; or " if record.prepared else "")
            + f"trackday dr resume --stack {stack} --prefix {record.model_prefix}",
        )
    return table


def show_interrupted(target: RunTarget, stack: str) -> None:
    """Print the interrupted runs' table, if there are any (`dr status`, `dr summary`)."""
    try:
        table = interrupted_table(target, stack)
    except storage.StorageError as error:
        raise fail(str(error)) from None
    if table is not None:
        Console(width=160).print(table)
