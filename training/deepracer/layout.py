"""Where a DeepRacer run keeps its files in the bucket, exactly as DRfC and the simulator do.

deepracer-utils log analysis and model import into DeepRacer on AWS read these keys, so
trackday must not invent its own. All keys are relative to the bucket.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.deepracer.settings import DeepRacerSettings

REWARD_FUNCTION = "reward_function.py"
MODEL_METADATA = "model_metadata.json"
HYPERPARAMETERS = "hyperparameters.json"
CUSTOM_FILE_NAMES = (REWARD_FUNCTION, MODEL_METADATA, HYPERPARAMETERS)
# trackday's own, beside a model prefix: what a spot node's handler recorded when its run was
# interrupted, and in a resumed prefix the record of the run it continues
# (training/deepracer/interruption.py).
INTERRUPTION_RECORD = "interruption.json"
RESUMED_FROM = "resumed-from.json"


@dataclass(frozen=True)
class RunLayout:
    """The keys of one model prefix (one run) and of the custom files it was started with."""

    model_prefix: str
    custom_files_prefix: str = "custom_files"
    training_params_file: str = "training_params.yaml"
    evaluation_params_file: str = "evaluation_params.yaml"

    @classmethod
    def of(cls, settings: DeepRacerSettings) -> RunLayout:
        return cls(
            model_prefix=settings.model_prefix,
            custom_files_prefix=settings.custom_files_prefix,
            training_params_file=settings.training_params_file,
            evaluation_params_file=settings.evaluation_params_file,
        )

    def custom_file(self, name: str) -> str:
        """`custom_files/<name>`: where a run uploads the user's files before it starts."""
        return f"{self.custom_files_prefix}/{name}"

    @property
    def reward_function(self) -> str:
        return self.custom_file(REWARD_FUNCTION)

    @property
    def model_metadata(self) -> str:
        return self.custom_file(MODEL_METADATA)

    @property
    def hyperparameters(self) -> str:
        return self.custom_file(HYPERPARAMETERS)

    @property
    def model_dir(self) -> str:
        """Checkpoints, `model_metadata.json` and `deepracer_checkpoints.json` of the run."""
        return f"{self.model_prefix}/model"

    @property
    def checkpoints_json(self) -> str:
        return f"{self.model_dir}/deepracer_checkpoints.json"

    @property
    def ip_dir(self) -> str:
        """The trainer's address and the hyperparameters it published for the workers."""
        return f"{self.model_prefix}/ip"

    @property
    def run_reward_function(self) -> str:
        """The copy next to the model that exports (upload-model, DeepRacer on AWS's import)
        read."""
        return f"{self.model_prefix}/{REWARD_FUNCTION}"

    @property
    def training_params(self) -> str:
        return f"{self.model_prefix}/{self.training_params_file}"

    @property
    def evaluation_params(self) -> str:
        return f"{self.model_prefix}/{self.evaluation_params_file}"

    @property
    def metrics_prefix(self) -> str:
        return f"{self.model_prefix}/metrics"

    def training_metrics(self, worker: int = 0) -> str:
        """Worker 0 writes `TrainingMetrics.json`, worker n>0 `TrainingMetrics_n.json`."""
        suffix = f"_{worker}" if worker > 0 else ""
        return f"{self.metrics_prefix}/TrainingMetrics{suffix}.json"

    def evaluation_metrics(self, stamp: str) -> str:
        return f"{self.metrics_prefix}/evaluation/evaluation-{stamp}.json"

    def training_simtrace_dir(self, worker: int = 0, workers: int = 1) -> str:
        """With several workers each one writes under its own `<prefix>/<worker>/`."""
        base = f"{self.model_prefix}/{worker}" if workers > 1 else self.model_prefix
        return f"{base}/training-simtrace"

    def training_simtrace(self, iteration: int, worker: int = 0, workers: int = 1) -> str:
        return f"{self.training_simtrace_dir(worker, workers)}/{iteration}-iteration.csv"

    def evaluation_prefix(self, stamp: str) -> str:
        """Simtrace of one evaluation: `<prefix>/evaluation-<YYYYmmddHHMMSS>`."""
        return f"{self.model_prefix}/evaluation-{stamp}"

    @property
    def mp4_prefix(self) -> str:
        return f"{self.model_prefix}/mp4"
