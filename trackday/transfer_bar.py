"""The bar the CLI draws while training.storage moves an object: storage tells a callback how
a transfer goes; the drawing (Rich) stays on the operator's side, out of the trainer image."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from training import storage


@contextmanager
def transfer_bar(console: Console | None = None) -> Iterator[storage.Progress]:
    """A transient bar on stderr (drawn only on a terminal); yields the `progress=` callback.

    Each phase (hashing, uploading, verifying, ...) restarts the bar, so its speed and time
    left are the phase's own.
    """
    console = console or Console(stderr=True)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    task = bar.add_task("", total=None)
    phase: list[str] = []

    def update(what: str, done: int, total: int) -> None:
        if phase != [what]:
            phase[:] = [what]
            bar.reset(task, description=what, total=total)
        bar.update(task, completed=done, total=total)

    with bar:
        yield update
