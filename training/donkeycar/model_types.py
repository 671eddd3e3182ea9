"""What each donkeycar model type needs from the records, and what loss a trivial pilot gets.

Pure (no donkeycar import), so `trackday donkey train` checks a tub on the laptop before
packing, and the trainer checks an archive seconds after it starts, not an hour into a GPU
job. The keys and losses follow donkeycar's own `donkeycar/parts/keras.py` (5.3.0 and
5.4.0 alike): `KerasBehavioral.x_transform` reads `behavior/one_hot_state_array`,
`KerasLocalizer.y_transform` reads `localizer/location`, `KerasIMU.imu_vec` is
`imu/{acl,gyr}_{x,y,z}`; the regression models compile with `loss='mse'`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

IMU_KEYS = tuple(f"imu/{sensor}_{axis}" for sensor in ("acl", "gyr") for axis in "xyz")

# Record keys a model type reads beyond the image, angle and throttle every model reads.
EXTRA_RECORD_KEYS: dict[str, tuple[str, ...]] = {
    "behavior": ("behavior/one_hot_state_array",),
    "localizer": ("localizer/location",),
    "imu": IMU_KEYS,
}

# How the model's own loss is made of per-output MSEs, for the models whose loss is one:
# "sum" for two outputs (angle, throttle) each with loss 'mse' (Keras adds them), "angle"
# for the angle alone (inferred), "mean" for one output of [angle, throttle] (rnn, 3d).
# Categorical, behavior and localizer use cross-entropy: no comparable trivial loss.
_MSE_LOSS = {
    "linear": "sum",
    "memory": "sum",
    "imu": "sum",
    "inferred": "angle",
    "rnn": "mean",
    "3d": "mean",
}


def missing_record_keys(model_type: str, records: Iterable[Mapping[str, object]]) -> list[str]:
    """The keys `model_type` reads that some record lacks, each with how many records lack it."""
    needed = EXTRA_RECORD_KEYS.get(model_type, ())
    missing = dict.fromkeys(needed, 0)
    for record in records:
        for key in needed:
            if record.get(key) is None:
                missing[key] += 1
    return [f"{key} (missing in {count} record(s))" for key, count in missing.items() if count]


def record_keys_problem(model_type: str, records: Iterable[Mapping[str, object]]) -> str | None:
    """Why these records cannot train `model_type`, or None when they can."""
    missing = missing_record_keys(model_type, records)
    if not missing:
        return None
    return (
        f"model type {model_type} reads {', '.join(missing)}: record the tub with the "
        f"{model_type} parts enabled on the car, or train another model type (--model-type)"
    )


def constant_predictor_loss(
    model_type: str, angles: list[float], throttles: list[float]
) -> float | None:
    """The model's own loss when always predicting the mean: what a pilot must beat.

    None for the model types whose loss is not an MSE of angle and throttle: a baseline in
    another loss than the model's cannot be compared with its validation loss.
    """
    kind = _MSE_LOSS.get(model_type)
    if kind is None or not angles:
        return None
    angle_var = _variance(angles)
    throttle_var = _variance(throttles)
    if kind == "angle":
        return angle_var
    total = angle_var + throttle_var
    return total / 2 if kind == "mean" else total


def _variance(values: list[float]) -> float:
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / len(values)
