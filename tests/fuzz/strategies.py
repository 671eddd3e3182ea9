"""Shared strategies: JSON of any shape, and names made to escape folders."""

from __future__ import annotations

from hypothesis import strategies as st

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
path_parts = st.sampled_from(
    [
        "..",
        ".",
        "",
        "a",
        "tubs",
        "data",
        "images",
        "/",
        "\\",
        "~",
        "manifest.json",
        "catalog_0.catalog",
        "x\x00y",
        "é",
    ]
)
hostile_names = st.lists(path_parts, min_size=1, max_size=6).map("/".join) | st.text(max_size=30)
