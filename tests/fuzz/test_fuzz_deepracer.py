"""Fuzzing the DeepRacer inputs: custom files, DRfC env files, reward-function source."""

from __future__ import annotations

import ast
import contextlib
import json
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.strategies import json_values
from training.deepracer.custom_files import load_json
from training.deepracer.drfc_import import ImportProblem, import_drfc, parse_env
from training.deepracer.hyperparameters_check import check_hyperparameters
from training.deepracer.metadata_check import check_model_metadata
from training.deepracer.problems import Problem
from training.deepracer.reward_rules import droa_warnings, not_run_reason

env_lines = st.lists(
    st.sampled_from(
        [
            "DR_WORLD_NAME",
            "DR_RACE_TYPE",
            "DR_CAR_NAME",
            "DR_LOCAL_S3_MODEL_PREFIX",
            "DR_UPLOAD_S3_PREFIX",
            "DR_TRAIN_REVERSE_DIRECTION",
            "X",
        ]
    ).flatmap(lambda key: st.text(max_size=15).map(lambda v: f"{key}={v}"))
    | st.text(max_size=30),
    max_size=8,
).map("\n".join)
metadata_like = json_values | st.fixed_dictionaries(
    {},
    optional={
        "action_space": json_values,
        "sensor": json_values,
        "neural_network": json_values,
        "training_algorithm": json_values,
        "action_space_type": json_values,
        "version": json_values,
    },
)


@given(metadata_like)
def test_model_metadata_gives_problems_not_tracebacks(data):
    problems, actions = check_model_metadata(data)
    assert all(isinstance(p, Problem) for p in problems) and isinstance(actions, list)


@given(
    json_values
    | st.dictionaries(
        st.sampled_from(["batch_size", "lr", "num_epochs", "loss_type", "discount_factor", "x"]),
        json_values,
    )
)
def test_hyperparameters_give_problems_not_tracebacks(data):
    assert all(isinstance(p, Problem) for p in check_hyperparameters(data))


@given(st.binary(max_size=200) | metadata_like.map(lambda v: json.dumps(v).encode()))
def test_json_files_load_or_say_why(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model_metadata.json"
        path.write_bytes(data)
        value, problems = load_json(path)
        assert all(isinstance(p, Problem) for p in problems)
        assert value is None or not problems


@given(st.text(max_size=300))
def test_env_text_parses_to_strings(text):
    values = parse_env(text)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in values.items())


@given(env_lines, env_lines)
def test_drfc_folders_import_or_say_why(system, run):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "system.env").write_text(system)
        (folder / "run.env").write_text(run)
        with contextlib.suppress(ImportProblem):  # a clear refusal is fine; a traceback not
            import_drfc(folder)


@given(st.text(max_size=120))
def test_reward_source_rules_never_raise(source):
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return
    assert all(isinstance(w, Problem) for w in droa_warnings(source, tree, "r.py"))
    not_run_reason(tree)
