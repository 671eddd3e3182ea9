"""All checks on a custom-files folder for one run, as `trackday dr validate` and the
Pulumi program run them before anything is deployed."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from training.deepracer.custom_files import load_json
from training.deepracer.hyperparameters_check import check_droa_import, check_hyperparameters
from training.deepracer.layout import HYPERPARAMETERS, MODEL_METADATA, REWARD_FUNCTION
from training.deepracer.metadata_check import DEFAULT_ACTIONS, check_model_metadata
from training.deepracer.problems import Problem
from training.deepracer.reward_check import (
    DEFAULT_BUDGET_S,
    RewardCheck,
    check_reward_function,
    check_reward_source,
    reward_warnings,
)
from training.deepracer.scenarios import Scenario, scenarios
from training.deepracer.settings import DeepRacerSettings
from training.deepracer.track import Track, TrackError


@dataclass
class Validation:
    problems: list[Problem] = field(default_factory=list)
    track: Track | None = None
    scenarios: list[Scenario] = field(default_factory=list)
    reward: RewardCheck | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if not p.warning]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.warning]


def as_warnings(problems: list[Problem]) -> list[Problem]:
    """The reward check's warnings (the run trains; DRoA's import may refuse) as Problems
    flagged so, beside the errors."""
    return [replace(p, warning=True) for p in problems]


def validate_custom_files(
    folder: Path,
    settings: DeepRacerSettings,
    tracks_dir: Path | None,
    budget_s: float = DEFAULT_BUDGET_S,
) -> Validation:
    """Check the three files in `folder` for a run on `settings.world`.

    Without `tracks_dir` the reward function is only checked as source (syntax, imports,
    its name), not run."""
    result = Validation()
    metadata, problems = load_json(folder / MODEL_METADATA)
    actions: list[tuple[float, float]] = []
    if metadata is not None:
        found, actions = check_model_metadata(metadata)
        problems += found
    hyperparameters, found = load_json(folder / HYPERPARAMETERS)
    problems += found
    if hyperparameters is not None:
        problems += check_hyperparameters(hyperparameters)
        problems += check_droa_import(metadata, hyperparameters)
    result.problems += problems
    reward_file = folder / REWARD_FUNCTION
    if not reward_file.is_file():
        result.problems.append(
            Problem(
                REWARD_FUNCTION,
                f"missing from {folder}",
                "add it (DRfC's defaults/ folder has a starting point)",
            )
        )
        return result
    if tracks_dir is None:
        result.problems += check_reward_source(reward_file)
        result.problems += as_warnings(reward_warnings(reward_file))
        return result
    try:
        result.track = Track.load(tracks_dir, settings.world)
    except TrackError as error:
        result.problems.append(Problem("world", str(error), "see above"))
        return result
    result.scenarios = scenarios(result.track, settings, actions or DEFAULT_ACTIONS)
    result.reward = check_reward_function(reward_file, result.scenarios, budget_s)
    result.problems += result.reward.problems
    result.problems += as_warnings(result.reward.warnings)
    return result
