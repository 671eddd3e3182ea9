"""Fitting: donkeycar's own `train()`, the code `donkey train` runs, observed from outside.

`train()` returns nothing, so the trainer learns what it did from donkeycar's log lines
(the record split, the start and end of `model.fit`) and from its `train_test_split`,
wrapped during the call to keep the validation records for the movie.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from training.donkeycar.checks import TrainerError


class DonkeycarEvents(logging.Handler):
    """Reads donkeycar's own log lines for what `train()` does not return.

    `train()` returns nothing; it logs the record split and the start and end of
    `model.fit`, which lets the run manifest separate fitting from everything else.
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.fit_started: float | None = None
        self.fit_seconds: float | None = None
        self.records: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "Starting training" in message:
            self.fit_started = time.perf_counter()
        elif "Finished training" in message and self.fit_started is not None:
            self.fit_seconds = round(time.perf_counter() - self.fit_started, 3)
        elif message.startswith("Records # Training"):
            self.records["training"] = int(message.split()[-1])
        elif message.startswith("Records # Validation"):
            self.records["validation"] = int(message.split()[-1])


def train_model(
    cfg,
    tubs: list[Path],
    model_type: str,
    events: DonkeycarEvents,
    transfer: Path | None = None,
    comment: str | None = None,
) -> tuple[Path, list]:
    """Run donkeycar's `train()`; the model path it wrote and its validation records.

    The path is the one `train()` itself would choose for `donkey train` without `--model`
    (`PilotDatabase.generate_model_name`); it is asked for first only to know it afterwards.
    """
    from donkeycar.pipeline import training
    from donkeycar.pipeline.database import PilotDatabase

    model_path, _ = PilotDatabase(cfg).generate_model_name()
    model = Path(model_path)
    donkey_log = logging.getLogger("donkeycar")
    level = donkey_log.level
    donkey_log.setLevel(logging.INFO)  # the events are INFO lines, whatever the root logger's level
    donkey_log.addHandler(events)
    split = training.train_test_split
    validation: list = []

    def observed_split(*args, **kwargs):
        """donkeycar's own split, unchanged; its validation half is kept for the movie."""
        train_records, validation_records = split(*args, **kwargs)
        validation.extend(validation_records)
        return train_records, validation_records

    training.train_test_split = observed_split
    try:
        training.train(
            cfg,
            ",".join(str(t) for t in tubs),
            str(model),
            model_type,
            str(transfer) if transfer else None,
            comment,
        )
    finally:
        training.train_test_split = split
        donkey_log.removeHandler(events)
        donkey_log.setLevel(level)
    if not model.exists():
        raise TrainerError("donkeycar's training wrote no model: see its log above")
    return model, validation
