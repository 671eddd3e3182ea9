"""Hypothesis profiles for the fuzz tests of every parser of untrusted input.

The normal test run uses `ci`: a bounded number of examples per parser, no example
database, so it costs seconds and writes nothing. For a longer hunt:

    TRACKDAY_FUZZ=long .venv/bin/python -m pytest tests/fuzz -q

(`long` keeps found examples in .hypothesis/ so a failure replays on the next run.)
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile(
    "ci", max_examples=60, deadline=None, database=None, suppress_health_check=_SLOW_OK
)
settings.register_profile(
    "long", max_examples=20_000, deadline=None, suppress_health_check=_SLOW_OK
)
settings.load_profile(os.environ.get("TRACKDAY_FUZZ", "ci"))
