"""What one cloud run trains, from the stack's settings and the command line.

`trackday donkey submit --model-type … --set KEY=VALUE …` changes one run without a
`pulumi up`: the command line wins over the stack, the stack over the car config in the
archive (the trainer reads its DEFAULT_MODEL_TYPE when no model type is given). A job
that asks for a GPU requires one (`--require-gpu`) unless `--allow-cpu` says otherwise.
`--transfer` and `--myconfig` name the model the run starts from and its myconfig.py by
their URLs in the bucket (trackday/donkey_transfer.py puts them there), as `donkey train`
takes them; `--comment` goes to donkeycar's database.json.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trackday.runs import trainer_args


@dataclass(frozen=True)
class RunOptions:
    """The command line's choices for one run."""

    model_type: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    allow_cpu: bool = False
    transfer: str | None = None  # the starting model's URL in the bucket, as the job names it
    myconfig: str | None = None  # the run's myconfig.py in the bucket, as the job names it
    comment: str | None = None  # for donkeycar's database.json

    def model_type_over(self, stack_model_type: str | None) -> str | None:
        return self.model_type or stack_model_type

    def trainer_args(
        self,
        data_url: str,
        output_url: str,
        run_id: str,
        stack_model_type: str | None,
        stack_overrides: dict[str, Any],
        gpus: int,
    ) -> list[str]:
        """The trainer's command line: the stack's settings with this run's on top."""
        args = trainer_args(
            data_url,
            output_url,
            run_id,
            self.model_type_over(stack_model_type),
            {**stack_overrides, **self.overrides},
        )
        args += ["--transfer", self.transfer] if self.transfer else []
        args += ["--myconfig", self.myconfig] if self.myconfig else []
        args += ["--comment", self.comment] if self.comment else []
        if gpus and not self.allow_cpu:
            args.append("--require-gpu")
        return args
