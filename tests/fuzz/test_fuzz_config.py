"""Fuzzing the stack config: a clear ConfigError or a StackConfig, never a traceback."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from infra.config import ConfigError, StackConfig, parse
from tests.fuzz.strategies import json_values

keys = st.sampled_from(
    [
        "target",
        "storage",
        "nodes",
        "network",
        "budget",
        "gpu",
        "donkeycar",
        "gcp",
        "aws",
        "azure",
        "local",
        "tags",
        "deepracer",
        "x",
    ]
)


@given(st.dictionaries(keys, json_values, max_size=5))
def test_stack_config_is_parsed_or_refused_with_a_config_error(raw):
    try:
        assert isinstance(parse(raw), StackConfig)
    except ConfigError as error:
        assert str(error)
