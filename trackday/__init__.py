"""The `trackday` command: per-run work that is not infrastructure."""

__version__ = "0.1.0"
