"""A synthetic Tub v2 whose steering can be learned from the image.

For a user with no tub yet, and for tests: each image shows a lane line whose position at
the bottom of the frame follows the steering angle, so a trained pilot clearly beats
predicting the mean angle. Written in donkeycar's own Tub v2 layout, byte for byte the shape
`donkeycar.parts.tub_v2.Tub` writes, so donkeycar reads it unchanged.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from training.donkeycar.model_types import IMU_KEYS

WIDTH, HEIGHT = 160, 120
HORIZON = 40
CATALOG_LEN = 1000
INPUTS = ["cam/image_array", "user/angle", "user/throttle", "user/mode"]
TYPES = ["image_array", "float", "float", "str"]
# What a car records with its behavior, localizer and IMU parts on (donkeycar's
# templates/complete.py adds these inputs to the tub writer): the data those models read.
SENSOR_INPUTS = ["behavior/one_hot_state_array", "localizer/location", *IMU_KEYS]
SENSOR_TYPES = ["list", "int", *["float"] * 6]
BEHAVIORS = 2  # len(BEHAVIOR_LIST) in donkeycar's cfg_complete.py
LOCATIONS = 10  # NUM_LOCATIONS in donkeycar's cfg_complete.py


def lane_image(angle: float, rng: np.random.Generator) -> np.ndarray:
    """A road with one bright lane line, its bottom end shifted by `angle` in [-1, 1]."""
    img = rng.normal(70, 12, size=(HEIGHT, WIDTH, 3)).clip(0, 255)
    img[:HORIZON] = (110, 150, 200)  # sky
    rows = np.arange(HORIZON, HEIGHT)
    centre = WIDTH / 2 + angle * 55 * (rows - HORIZON) / (HEIGHT - HORIZON)
    half_width = 1 + 3 * (rows - HORIZON) / (HEIGHT - HORIZON)
    cols = np.arange(WIDTH)
    line = np.abs(cols[None, :] - centre[:, None]) <= half_width[:, None]
    img[HORIZON:][line] = (235, 235, 220)
    return img.astype(np.uint8)


def _json_line(obj: object) -> str:
    return json.dumps(obj, sort_keys=True, allow_nan=False) + "\n"


def sensor_values(index: int, angle: float) -> dict[str, object]:
    """Behavior, location and IMU values that follow the steering, for SENSOR_INPUTS."""
    behavior = [0.0] * BEHAVIORS
    behavior[0 if angle < 0 else 1] = 1.0
    imu = {key: round(angle * (i + 1) / len(IMU_KEYS), 4) for i, key in enumerate(IMU_KEYS)}
    return {
        "behavior/one_hot_state_array": behavior,
        "localizer/location": index // 20 % LOCATIONS,
        **imu,
    }


def write_sample_tub(path: Path, records: int = 1000, seed: int = 0, sensors: bool = False) -> Path:
    """Write a tub of `records` lane-line frames at `path` (which must not hold a tub yet).

    `sensors` adds the behavior, localizer and IMU data those model types read.
    """
    if records < 1:
        raise ValueError("a sample tub needs at least one record")
    if (path / "manifest.json").exists():
        raise FileExistsError(f"{path} already holds a tub; choose an empty folder")
    rng = np.random.default_rng(seed)
    images = path / "images"
    images.mkdir(parents=True, exist_ok=True)
    now = time.time()
    session = time.strftime("%y-%m-%d") + "_0"
    catalogs: list[str] = []
    angle = 0.0
    for start in range(0, records, CATALOG_LEN):
        name = f"catalog_{len(catalogs)}.catalog"
        catalogs.append(name)
        lengths = []
        with (path / name).open("w", newline="\n") as catalog:
            for index in range(start, min(start + CATALOG_LEN, records)):
                angle = float(np.clip(0.85 * angle + rng.normal(0, 0.3), -1, 1))
                throttle = float(np.clip(0.5 - 0.2 * abs(angle) + rng.normal(0, 0.02), 0, 1))
                image_name = f"{index}_cam_image_array_.jpg"
                buffer = io.BytesIO()
                Image.fromarray(lane_image(angle, rng)).save(buffer, format="JPEG")
                (images / image_name).write_bytes(buffer.getvalue())
                line = _json_line(
                    {
                        "_index": index,
                        "_session_id": session,
                        "_timestamp_ms": int((now + index / 20) * 1000),
                        "cam/image_array": image_name,
                        "user/angle": round(angle, 4),
                        "user/mode": "user",
                        "user/throttle": round(throttle, 4),
                        **(sensor_values(index, angle) if sensors else {}),
                    }
                )
                catalog.write(line)
                lengths.append(len(line))
        meta = {
            "created_at": now,
            "line_lengths": lengths,
            "path": Path(name).with_suffix(".catalog_manifest").name,
            "start_index": start,
        }
        (path / meta["path"]).write_text(_json_line(meta), newline="\n")
    manifest = [
        json.dumps(INPUTS + (SENSOR_INPUTS if sensors else [])),
        json.dumps(TYPES + (SENSOR_TYPES if sensors else [])),
        json.dumps({}),
        json.dumps(
            {
                "created_at": now,
                "sessions": {"all_full_ids": [session], "last_full_id": session, "last_id": 0},
            }
        ),
        json.dumps(
            {
                "paths": catalogs,
                "current_index": records,
                "max_len": CATALOG_LEN,
                "deleted_indexes": [],
            }
        ),
    ]
    (path / "manifest.json").write_text("\n".join(manifest) + "\n", newline="\n")
    return path
