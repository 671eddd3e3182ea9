"""Run settings: DRfC's defaults, and a clear error for each bad value."""

import pytest
from pydantic import ValidationError

from training.deepracer.settings import (
    DeepRacerSettings,
    Pretrained,
    RaceType,
    describe_error,
    increment_model,
)


def test_defaults_equal_drfc_templates():
    s = DeepRacerSettings()
    assert (s.run_id, s.world, s.race_type) == (0, "reinvent_base", RaceType.TIME_TRIAL)
    assert (s.car.name, s.car.shell, s.car.color.value) == ("FastCar", "deepracer", "Red")
    assert s.workers == 1 and s.model_prefix == "rl-deepracer-sagemaker"
    assert (s.pretrained.enabled, s.pretrained.model_prefix, s.pretrained.checkpoint) == (
        False,
        "rl-sagemaker-pretrained",
        "last",
    )
    t = s.training
    assert (t.change_start_position, t.reverse_direction, t.alternate_driving_direction) == (
        True,
        False,
        False,
    )
    assert (t.start_position_offset, t.round_robin_advance_dist, t.min_eval_trials) == (
        0.0,
        0.05,
        5,
    )
    assert t.best_model_metric.value == "progress"
    e = s.evaluation
    assert (e.number_of_trials, e.is_continuous, e.max_resets) == (3, True, 100)
    assert (e.off_track_penalty, e.collision_penalty, e.save_mp4, e.checkpoint) == (
        5.0,
        5.0,
        False,
        "last",
    )
    assert (e.opponent.model_prefix, e.opponent.car_name, e.reset_behind_dist) == (
        "rl-deepracer-sagemaker",
        "FasterCar",
        1.0,
    )
    oa = s.object_avoidance
    assert (oa.number_of_obstacles, oa.min_distance_between_obstacles, oa.obstacle_type) == (
        6,
        2.0,
        "box_obstacle",
    )
    h = s.head_to_bot
    assert (h.number_of_bot_cars, h.bot_car_speed, h.bot_car_penalty) == (3, 0.2, 5.0)
    assert (h.lower_lane_change_time, h.upper_lane_change_time) == (3.0, 5.0)
    assert s.simulator.reference == "awsdeepracercommunity/deepracer-simapp:6.0.4-gpu"
    assert (s.cameras.main, s.cameras.sub, s.cameras.kvs) == (True, False, True)
    assert s.cloudwatch.enabled is False
    assert s.upload_model_prefix == "rl-deepracer-sagemaker-1"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"race_type": "DRAG_RACE"}, "trackday:deepracer.race_type: Input should be"),
        ({"workers": 0}, "trackday:deepracer.workers: Input should be greater than or equal to 1"),
        ({"car": {"colour": "Red"}}, "trackday:deepracer.car.colour: unknown setting"),
        ({"car": {"color": "Pink"}}, "trackday:deepracer.car.color: Input should be 'Black'"),
        ({"model_prefix": "/abs/"}, "'/abs/' is not a bucket prefix"),
        ({"simulator": {"tag": "6.0.4"}}, "must end in '-gpu' or '-cpu'"),
        ({"object_avoidance": {"object_positions": ["0.5,2"]}}, "must be 'PROGRESS,LANE'"),
        ({"object_avoidance": {"obstacle_type": "cone"}}, "obstacle_type: Input should be"),
        ({"head_to_bot": {"lower_lane_change_time": 9}}, "must not exceed upper_lane_change_time"),
        (
            {"pretrained": {"enabled": True, "model_prefix": "rl-deepracer-sagemaker"}},
            "would overwrite the model it starts from",
        ),
        ({"pretrained": {"checkpoint": "first"}}, "must be 'last' or 'best'"),
        ({"pretrained": {"checkpoint": "12"}}, "(a number is taken as 'last')"),
        ({"world": "../etc"}, "is not a track name"),
        ({"training": {"bestModelMetric": "speed"}}, "bestModelMetric: Input should be"),
    ],
)
def test_bad_values_name_key_and_fix(data, expected):
    with pytest.raises(ValidationError) as caught:
        DeepRacerSettings.model_validate(data)
    message = describe_error(caught.value)
    assert expected in message
    assert "\n" not in message  # one line per bad value


def test_the_pretrained_checkpoint_is_read_as_the_trainer_reads_it():
    """simapp lower-cases it, and strips nothing: ` best` would silently be the last."""
    assert Pretrained(checkpoint="Best").checkpoint == "best"
    assert Pretrained(checkpoint="LAST").checkpoint == "last"
    with pytest.raises(ValidationError, match="must be 'last' or 'best'"):
        Pretrained(checkpoint=" best")


def test_stack_file_keys_are_camel_case():
    s = DeepRacerSettings.model_validate(
        {"raceType": "HEAD_TO_BOT", "headToBot": {"numberOfBotCars": 2}, "car": {"name": "X"}}
    )
    assert (s.race_type, s.head_to_bot.number_of_bot_cars) == (RaceType.HEAD_TO_BOT, 2)
    assert s.model_dump(by_alias=True)["headToBot"]["botCarSpeed"] == 0.2


def test_increment_model_like_drfc():
    first = increment_model(DeepRacerSettings(model_prefix="my-model"))
    assert first.model_prefix == "my-model-1"
    assert first.pretrained.enabled and first.pretrained.model_prefix == "my-model"
    second = increment_model(first)
    assert (second.model_prefix, second.pretrained.model_prefix) == ("my-model-2", "my-model-1")
    named = increment_model(second, new_prefix="fresh")
    assert (named.model_prefix, named.pretrained.model_prefix) == ("fresh", "my-model-2")
