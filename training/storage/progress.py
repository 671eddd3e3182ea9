"""Progress of a transfer, told to a callback the caller supplies (the CLI draws a bar with
it; the trainer passes none). No drawing here: the trainer image carries this package."""

from __future__ import annotations

from collections.abc import Callable

from fsspec.callbacks import Callback

Progress = Callable[[str, int, int], None]
"""Called as progress(what, done, total): the phase ("uploading model.h5"), the bytes done in
it so far and the bytes it has in all; once with done=0 when a phase starts, then as bytes
pass."""


def callback_of(progress: Progress | bool | None) -> Progress | None:
    """The callback to call; a bool (the switch for the bar this package used to draw) or None
    means none."""
    return None if isinstance(progress, bool) else progress


class Meter:
    """One phase's byte count, told to a callback (or to nobody)."""

    def __init__(self, progress: Progress | None, what: str, total: int) -> None:
        self._progress = progress
        self.what = what
        self.total = total
        self.done = 0
        self._tell()

    def add(self, count: int) -> None:
        self.done += count
        self._tell()

    def set(self, done: int) -> None:
        self.done = done
        self._tell()

    def _tell(self) -> None:
        if self._progress is not None:
            self._progress(self.what, self.done, self.total)

    def fsspec(self) -> Callback:
        """An fsspec callback driving this meter (for put_file and friends)."""
        meter = self

        class _Callback(Callback):
            def call(self, *args: object, **kwargs: object) -> None:
                meter.set(self.value)

        return _Callback()
