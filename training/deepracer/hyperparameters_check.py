"""Checks `hyperparameters.json` as the simulator reads it (simapp v6.0.4's
sagemaker_graph_manager.py and training_worker.py: see custom_files.py), and what DeepRacer
on AWS's import refuses of it together with `model_metadata.json`.
"""

from __future__ import annotations

import difflib

from training.deepracer.custom_files import cast, choice
from training.deepracer.layout import HYPERPARAMETERS as HYPERPARAMETERS_FILE
from training.deepracer.metadata_check import ALGORITHMS
from training.deepracer.problems import Problem

# name: (cast the simulator applies, low, high of DRoA's model form; None for open)
HYPERPARAMETERS: dict[str, tuple[type, float | None, float | None]] = {
    "batch_size": (int, 1, 1024),
    "beta_entropy": (float, 0.0, 1.0),
    "discount_factor": (float, 0.0, 1.0),
    "e_greedy_value": (float, 0.0, 1.0),
    "epsilon_steps": (int, 1, None),
    "exploration_type": (str, None, None),
    "loss_type": (str, None, None),
    "lr": (float, 1e-8, 1e-3),
    "num_episodes_between_training": (int, 1, 100),
    "num_epochs": (int, 3, 10),
    "stack_size": (int, 1, 10),
    "term_cond_avg_score": (float, 0.0, None),
    "term_cond_max_episodes": (int, 1, None),
    "sac_alpha": (float, 0.0, 1.0),
    "max_sample_count": (int, 0, None),  # training_worker.py: sample collection
    "sampling_frequency": (int, 1, None),
}
EXPLORATION_TYPES = ("categorical", "e-greedy")
LOSS_TYPES = ("huber", "mean squared error")


def check_droa_import(metadata: object, hyperparameters: object) -> list[Problem]:
    """What DeepRacer on AWS's import refuses of the pair (libs/lambda api/handlers/
    importModel.ts): SAC trains after every episode there."""
    if not (isinstance(metadata, dict) and isinstance(hyperparameters, dict)):
        return []
    sac = choice(metadata.get("training_algorithm", "clipped_ppo"), ALGORITHMS) == "sac"
    episodes = hyperparameters.get("num_episodes_between_training")
    if sac and episodes != 1:
        return [
            Problem(
                HYPERPARAMETERS_FILE,
                f"num_episodes_between_training is {episodes!r} "
                "with sac: DeepRacer on AWS will not import the model",
                "set it to 1 for sac",
                warning=True,
            )
        ]
    return []


def check_hyperparameters(data: object, name: str = "hyperparameters.json") -> list[Problem]:
    if not isinstance(data, dict):
        return [Problem(name, "must be a JSON object", "start from DRfC's defaults")]
    problems = []
    for key, value in data.items():
        if key not in HYPERPARAMETERS:
            near = difflib.get_close_matches(key, list(HYPERPARAMETERS), n=1)
            hint = f"rename it to {near[0]!r}" if near else "remove it"
            problems.append(
                Problem(
                    name,
                    f"unknown hyperparameter {key!r}: the simulator ignores it",
                    f"{hint}; known: {', '.join(HYPERPARAMETERS)}",
                    warning=True,
                )
            )
            continue
        kind, low, high = HYPERPARAMETERS[key]
        problems += (_name_value if kind is str else _number_value)(
            name, key, value, kind, low, high
        )
    return problems


def _name_value(name: str, key: str, value: object, *_: object) -> list[Problem]:
    if not isinstance(value, str):
        return [Problem(name, f"{key} is {value!r}, not a name", f'write "{key}": "..."')]
    if key == "exploration_type":
        if value.lower().strip() not in EXPLORATION_TYPES:
            return [
                Problem(
                    name,
                    f"{key} is {value!r}",
                    f"use one of {', '.join(map(repr, EXPLORATION_TYPES))}",
                )
            ]
    elif value.lower() not in LOSS_TYPES:  # lower-cased, not stripped
        return [
            Problem(
                name,
                f"loss_type {value!r} is not 'huber': the simulator uses mean squared error",
                "write 'huber' or 'mean squared error'",
                warning=True,
            )
        ]
    return []


def _number_value(
    name: str, key: str, value: object, kind: type, low: float | None, high: float | None
) -> list[Problem]:
    number = cast(kind, value)
    if number is None or isinstance(value, bool):
        wanted = "a whole number" if kind is int else "a number"
        return [
            Problem(
                name,
                f"{key} is {value!r}, not {wanted} the simulator can read",
                "write a plain JSON number",
            )
        ]
    problems = []
    if kind is int and isinstance(value, float) and not value.is_integer():
        problems.append(
            Problem(
                name,
                f"{key} {value} is cut to {number} by the simulator",
                "write a whole number",
                warning=True,
            )
        )
    if key == "sampling_frequency" and number < 1:
        return [Problem(name, f"sampling_frequency {value!r} must be 1 or more", "write 1 or more")]
    if (low is not None and number < low) or (high is not None and number > high):
        allowed = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
        problems.append(
            Problem(
                name,
                f"{key} {value} is outside what DeepRacer on AWS's model form accepts ({allowed})",
                f"keep it {allowed} unless you mean it",
                warning=True,
            )
        )
    return problems
