"""The trainer's policy-training figures (surrogate loss, KL divergence, entropy) per iteration,
read from its log: no metrics file of the simulator or of DRfC holds them.

rl_coach's clipped PPO agent logs one line per training epoch, after each iteration's episodes:

    Policy training> Surrogate loss=-0.0109, KL divergence=0.00998, Entropy=2.628,
    training epoch=0, learning_rate=0.0003

(one line each in the log; the format SageMaker's metric definitions in the DeepRacer sample
notebooks match with `^Policy training>.*Entropy=(.*?),`, and that the DeepRacer console's
`logs/training/*-sagemaker.log` holds: deepracer-utils' sample-console-logs). Epochs count from
0 again in each iteration, then `Checkpoint> Saving in path=[...<n>_Step-<steps>.ckpt]` follows.
Read through `docker logs` or compose, a line may carry a prefix (`algo-1-abcde  | `), so the
pattern is searched for anywhere in the line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# The console's logs/training/<job>-sagemaker.log, and the one `trackday dr stop-training` saves.
TRAINER_LOGS = "sagemaker.log"
_LINE = re.compile(
    r"Policy training> Surrogate loss=(?P<loss>[^,]+), KL divergence=(?P<kl>[^,]+), "
    r"Entropy=(?P<entropy>[^,]+), training epoch=(?P<epoch>\d+)"
)


class PolicyLogError(ValueError):
    """A policy-training line whose figures are not numbers."""


@dataclass(frozen=True)
class PolicyRound:
    """One iteration's policy training: the means over its epochs."""

    iteration: int  # 0-based, as the training metrics count iterations
    epochs: int
    entropy: float
    kl_divergence: float
    surrogate_loss: float


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def policy_rounds(lines: Iterable[str]) -> list[PolicyRound]:
    """Every iteration's round of policy training, in order; a round is the run of epochs
    that starts at `training epoch=0`."""
    rounds: list[list[tuple[float, float, float]]] = []
    for number, line in enumerate(lines, 1):
        found = _LINE.search(line)
        if found is None:
            continue
        try:
            figures = tuple(float(found[k]) for k in ("entropy", "kl", "loss"))
        except ValueError:
            raise PolicyLogError(f"line {number}: not a number in {line.strip()!r}") from None
        if int(found["epoch"]) == 0 or not rounds:
            rounds.append([])
        rounds[-1].append(figures)
    return [
        PolicyRound(
            iteration=index,
            epochs=len(epochs),
            entropy=_mean([e[0] for e in epochs]),
            kl_divergence=_mean([e[1] for e in epochs]),
            surrogate_loss=_mean([e[2] for e in epochs]),
        )
        for index, epochs in enumerate(rounds)
    ]
