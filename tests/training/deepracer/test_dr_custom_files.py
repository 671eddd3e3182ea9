"""The custom-file checks accept what the simulator accepts (simapp v6.0.4).

Each case here was refused before, though the simulator reads it (false rejects), or
passed, though the simulator stops on it (false accepts)."""

from __future__ import annotations

import pytest

from tests.training.deepracer.dr_data import HYPERPARAMETERS, METADATA
from training.deepracer.hyperparameters_check import check_droa_import, check_hyperparameters
from training.deepracer.metadata_check import check_model_metadata
from training.deepracer.settings import DeepRacerSettings


def errors(problems) -> list[str]:
    return [str(p) for p in problems if not p.warning]


@pytest.mark.parametrize(
    "change",
    [
        {"training_algorithm": " Clipped_PPO "},  # lower-cased and stripped
        {"action_space_type": "Discrete "},
        {"action_space": [{"steering_angle": "15", "speed": "1.5"}]},  # float() reads them
        {"version": 1, "sensor": ["SOMETHING_ELSE"]},  # below 2 the sensor list is ignored
        {"sensor": ["FRONT_FACING_CAMERA"], "version": "5.0"},
        {
            "lidar_config": {
                "num_sectors": "16",
                "num_values_per_sector": 4.0,
                "clipping_dist": 20.0,
            }
        },
    ],
)
def test_what_the_simulator_reads_is_no_error(change):
    problems, actions = check_model_metadata({**METADATA, **change})
    assert errors(problems) == [] and actions


def test_numbers_as_strings_drive_the_check():
    _, actions = check_model_metadata(
        {**METADATA, "action_space": [{"steering_angle": "15", "speed": "1.5"}]}
    )
    assert actions == [(15.0, 1.5)]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"version": "3"} | {"sensor": None}, "sensor must be a list"),
        ({"lidar_config": {"num_sectors": 5}}, "lidar_config.num_sectors 5 must divide 64"),
        ({"lidar_config": {"num_sectors": 0}}, "must divide 64"),
        (
            {"lidar_config": {"num_values_per_sector": 0}},
            "num_values_per_sector 0 must be 1 or more",
        ),
        ({"lidar_config": {"clipping_dist": "far"}}, "clipping_dist 'far' is not a number"),
        ({"training_algorithm": 7}, "unknown training_algorithm 7"),
    ],
)
def test_what_the_simulator_refuses_is_an_error(change, expected):
    problems, _ = check_model_metadata({**METADATA, **change})
    assert any(expected in message for message in errors(problems)), errors(problems)


def test_version_2_or_more_needs_a_sensor_list():
    metadata = {k: v for k, v in METADATA.items() if k != "sensor"} | {"version": "4"}
    problems, _ = check_model_metadata(metadata)
    assert errors(problems) == [
        "model_metadata.json: version '4' needs a sensor list (the simulator stops without "
        'one). Fix: add "sensor": ["FRONT_FACING_CAMERA"]'
    ]
    no_version = {k: v for k, v in metadata.items() if k != "version"}
    assert check_model_metadata(no_version)[0] == []  # version 1: one camera, no sensor key


@pytest.mark.parametrize(
    "change",
    [
        {"batch_size": "64"},  # int() reads it
        {"lr": "0.0003"},
        {"exploration_type": " Categorical"},  # lower-cased and stripped
        {"max_sample_count": 100, "sampling_frequency": 5},  # the trainer reads both
    ],
)
def test_hyperparameters_the_simulator_reads_are_no_error(change):
    assert errors(check_hyperparameters({**HYPERPARAMETERS, **change})) == []


def test_the_f1_colours_are_known():
    car = DeepRacerSettings.model_validate(
        {"car": {"shell": "f1_car_11", "color": "f1_car_bccacc"}}
    ).car
    assert car.color.value == "f1_car_bccacc"
    assert DeepRacerSettings.model_validate({"car": {"color": "f1_car_1e73fc"}})


def test_what_droa_import_refuses_is_a_warning():
    sac = {**METADATA, "training_algorithm": "sac", "action_space_type": "continuous"}
    (problem,) = check_droa_import(sac, {**HYPERPARAMETERS, "num_episodes_between_training": 20})
    assert problem.warning and "DeepRacer on AWS will not import the model" in str(problem)
    assert check_droa_import(sac, {"num_episodes_between_training": 1}) == []
    assert check_droa_import(METADATA, {"num_episodes_between_training": 20}) == []
