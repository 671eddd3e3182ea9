"""What a run reports beside the model: the loss history donkeycar recorded, and its plot."""

from __future__ import annotations

import json
from pathlib import Path


def plot_loss(history: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for key in ("loss", "val_loss"):
        if key in history:
            ax.plot(range(1, len(history[key]) + 1), history[key], marker="o", label=key)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title("training and validation loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def read_history(models: Path) -> dict[str, list[float]]:
    """The training history donkeycar recorded in its model database."""
    entries = json.loads((models / "database.json").read_text())
    history = entries[-1]["History"]
    return {k: [float(v) for v in values] for k, values in history.items()}
