"""The trainer's policy-training lines, read from the DeepRacer console's own SageMaker log
(deepracer-utils' sample-console-logs) and checked against SageMaker's documented metric
pattern and the log's own checkpoint lines."""

from __future__ import annotations

import re

import pytest

from tests import dr_samples
from training.deepracer.policy_log import PolicyLogError, policy_rounds

# The metric definition of the DeepRacer sample notebooks (SageMaker's `ppo-entropy`).
SAGEMAKER_ENTROPY = re.compile(r"^Policy training>.*Entropy=(.*?),")
CHECKPOINT = re.compile(r"^Checkpoint> Saving in path=\['\./checkpoint_sagemaker/agent/(\d+)_")


def _console_log() -> list[str]:
    folder = dr_samples.logs_dir() / "sample-console-logs" / "logs" / "training"
    (log,) = folder.glob("*-sagemaker.log")
    return log.read_text().splitlines()


def test_one_round_per_iteration_of_the_console_log():
    lines = _console_log()
    rounds = policy_rounds(lines)
    entropies = [float(m[1]) for m in map(SAGEMAKER_ENTROPY.match, lines) if m]
    checkpoints = [int(m[1]) for m in map(CHECKPOINT.match, lines) if m]
    # checkpoint 0 is saved before any training; each round of training ends with the next one
    assert len(rounds) == len(checkpoints) - 1 == max(checkpoints)
    assert [r.iteration for r in rounds] == list(range(len(rounds)))
    assert sum(r.epochs for r in rounds) == len(entropies)
    start = 0
    for found in rounds:
        epochs = entropies[start : start + found.epochs]
        assert found.entropy == pytest.approx(sum(epochs) / len(epochs))
        start += found.epochs
    assert rounds[0].epochs == 3 and rounds[0].entropy == pytest.approx(2.626043, abs=1e-6)


def test_lines_read_through_docker_compose_keep_their_prefix():
    line = (
        "algo-1-x7k2p  | Policy training> Surrogate loss=-0.5, KL divergence=0.25, "
        "Entropy=1.5, training epoch=0, learning_rate=0.0003"
    )
    (found,) = policy_rounds([line, line.replace("epoch=0", "epoch=1").replace("1.5", "2.5")])
    assert (found.epochs, found.entropy, found.kl_divergence, found.surrogate_loss) == (
        2,
        2.0,
        0.25,
        -0.5,
    )


def test_a_figure_that_is_no_number_names_its_line():
    bad = "Policy training> Surrogate loss=x, KL divergence=0.1, Entropy=2.6, training epoch=0"
    with pytest.raises(PolicyLogError, match="line 2: not a number"):
        policy_rounds(["Training> something", bad])
