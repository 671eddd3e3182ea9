"""A movie of what the pilot sees and does, like `donkey makemovie`, written by every run.

The frames are the run's validation records (the split donkeycar's `train()` made, observed
as it is made, see train.py), in recording order. On each the recorded steering and throttle
are drawn in green and the pilot's in blue, with donkeycar's own
`MakeMovie.draw_line_into_image` (donkeycar/management/makemovie.py). The pilot is the
run's `.tflite`, what a Raspberry Pi car drives (and 10-20 times faster per frame on a CPU
than the Keras model), loaded as the car loads it (`get_model_by_type('tflite_<type>')` +
`load`) and fed as the vehicle loop feeds it:
the camera image after the config's TRANSFORMATIONS, plus the behavior or IMU values the
record carries for those model types. Written with OpenCV (installed with donkeycar[pc])
as MPEG-4 in an .mp4, which browsers and players open; `makemovie` needs moviepy instead.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from training.donkeycar.model_types import IMU_KEYS

log = logging.getLogger("trackday.train")

MAX_FRAMES = 300
SCALE = 2  # 160x120 frames are small on a laptop screen
GREEN, BLUE = (0, 255, 0), (0, 0, 255)  # makemovie's colours, RGB


def _extra_inputs(model_type: str, record: dict) -> list[object]:
    """What the vehicle loop passes the pilot besides the image, for this model type."""
    if model_type == "behavior":
        return [record["behavior/one_hot_state_array"]]
    if model_type == "imu":
        return [[record[k] for k in IMU_KEYS]]
    return []


def _last(record):
    """Sequence models (memory, rnn, 3d) split lists of records; the frame is the last one."""
    return record[-1] if isinstance(record, list) else record


def write_movie(cfg, model_type: str, tflite: Path, records: list, out: Path) -> int:
    """Write the movie of `records`, driven by the `tflite` pilot, to `out`; the frame count."""
    import cv2
    from donkeycar.management.makemovie import MakeMovie
    from donkeycar.parts.image_transformations import ImageTransformations
    from donkeycar.utils import get_model_by_type

    frames = sorted((_last(r) for r in records), key=lambda r: r.underlying["_index"])
    frames = frames[:MAX_FRAMES]
    if not frames:
        return 0
    pilot = get_model_by_type(f"tflite_{model_type}", cfg)
    pilot.load(str(tflite))
    # The part complete.py puts before the pilot when driving.
    transformations = ImageTransformations(cfg, "TRANSFORMATIONS", "POST_TRANSFORMATIONS")
    height, width = cfg.IMAGE_H * SCALE, cfg.IMAGE_W * SCALE
    fps = float(getattr(cfg, "DRIVE_LOOP_HZ", 20))
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write {out.name} (no MPEG-4 encoder)")
    try:
        for record in frames:
            image = record.image()
            seen = transformations.run(image)
            angle, throttle = pilot.run(seen, *_extra_inputs(model_type, record.underlying))[:2]
            canvas = cv2.resize(np.ascontiguousarray(image), (width, height))
            values = record.underlying
            MakeMovie.draw_line_into_image(
                float(values["user/angle"]), float(values["user/throttle"]), False, canvas, GREEN
            )
            MakeMovie.draw_line_into_image(float(angle), float(throttle), True, canvas, BLUE)
            writer.write(cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return len(frames)
