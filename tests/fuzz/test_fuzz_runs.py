"""Fuzzing what fetch reads from a bucket: run manifests and latest.json."""

from __future__ import annotations

import json
import posixpath
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.strategies import hostile_names, json_values
from trackday import runs
from training import storage


@given(hostile_names | json_values)
def test_output_names_are_refused_or_stay_inside(name):
    try:
        path = runs.output_path(name)
    except runs.RunError:
        return
    joined = posixpath.normpath(posixpath.join("/dest", str(path)))
    assert joined.startswith("/dest/") and "\x00" not in joined


@given(
    st.text(max_size=200)
    | json_values.map(json.dumps)
    | hostile_names.map(lambda u: json.dumps({"url": u}))
    | hostile_names.map(lambda u: json.dumps({"url": "RUNS/" + u}))
)
def test_latest_json_names_a_run_of_this_bucket_or_is_refused(text):
    with tempfile.TemporaryDirectory() as tmp:
        bucket = f"file://{tmp}/b"
        prefix = runs.runs_url(bucket)
        storage.write_text(storage.join(prefix, "latest.json"), text.replace("RUNS", prefix))
        try:
            url = runs.resolve_run(bucket, "latest")
        except runs.RunError:
            return
        run_id = url.removeprefix(prefix + "/")
        assert url.startswith(prefix + "/") and "/" not in run_id and run_id not in (".", "..")


@given(
    json_values
    | st.fixed_dictionaries(
        {
            "outputs": st.dictionaries(
                hostile_names,
                st.text("0123456789abcdef", min_size=64, max_size=64) | json_values,
                max_size=4,
            )
        }
    )
)
def test_run_manifests_are_refused_or_every_output_is_safe(manifest):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run-manifest.json"
        path.write_text(json.dumps(manifest))
        try:
            outputs = runs.run_outputs(runs.read_manifest(path, "file:///run"), "file:///run")
        except runs.RunError:
            return
        for rel in outputs:
            assert not rel.is_absolute() and ".." not in rel.parts
