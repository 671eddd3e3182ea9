"""Checks `model_metadata.json` and `hyperparameters.json` as the simulator reads them:
this module reads a file and casts values as the simulator does; `metadata_check.py` checks
`model_metadata.json`, `hyperparameters_check.py` `hyperparameters.json` and what DeepRacer
on AWS's import refuses of the pair.

Mirrors simapp v6.0.4: bundle/markov/boto/s3/files/model_metadata.py (parse_model_metadata:
version, sensors, lidar_config, names lower-cased and stripped), bundle/markov/agents/utils.py
(known sensors), multi_agent_coach/action_space_configs.py (bounds, SAC continuous only),
agent_ctrl/constants.py and rollout_agent_ctrl.py (speed clamped to 0.1..4 m/s, steering
to +-30 degrees) and sagemaker_graph_manager.py / training_worker.py (hyperparameters cast
with int()/float(), unknown keys ignored, exploration_type refused unless known, loss_type
anything but huber meaning mean squared error). What the simulator refuses is an error;
what it clamps or ignores, values outside the ranges DeepRacer on AWS's model form accepts
(apps/website/src/pages/CreateModel/validation.ts in aws-solutions/deepracer-on-aws) and what
its import refuses are warnings.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from training.deepracer.problems import Problem


def load_json(path: Path) -> tuple[object | None, list[Problem]]:
    """The parsed file, or a problem naming the line of the JSON error."""
    name = path.name
    if not path.is_file():
        return None, [
            Problem(
                name,
                f"missing from {path.parent}",
                "add it (DRfC's defaults/ folder has a starting point)",
            )
        ]
    try:
        return json.loads(path.read_text(encoding="utf-8")), []
    except UnicodeDecodeError as error:
        return None, [Problem(name, f"not UTF-8 text: {error}", "save the file as UTF-8")]
    except json.JSONDecodeError as error:
        return None, [
            Problem(
                name,
                f"malformed JSON: {error.msg} (column {error.colno})",
                "fix the JSON syntax (quotes, commas, brackets) there",
                error.lineno,
            )
        ]


def cast(kind: type, value: object) -> float | int | None:
    """What the simulator's int()/float() makes of a value; None where it raises."""
    try:
        number = kind(value)  # type: ignore[call-arg]
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def choice(value: object, choices: tuple[str, ...]) -> str | None:
    """The simulator's `value.lower().strip()` when it is one of `choices`."""
    return (
        value.lower().strip()
        if isinstance(value, str) and (value.lower().strip() in choices)
        else None
    )
