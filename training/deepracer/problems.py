"""One problem found in a user's custom file: where it is, what is wrong, how to fix it.

A warning is what the simulator takes but changes (clamps, ignores) or what DeepRacer on
AWS's import would refuse: it is said, and does not stop a run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    file: str
    message: str
    fix: str
    line: int | None = None
    warning: bool = False

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}. Fix: {self.fix}"
