"""Section 9. Plots and widgets: figures drawn from training histories and artefacts."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd


def plot_loss_curves(history: pd.DataFrame, ax=None, title: str = "Training loss", column: str = "loss"):
    """Loss against step, one line per model in the history (and held-out loss as dashed points)."""
    ax = ax or plt.subplots(figsize=(7, 4))[1]
    for name, runs in history.groupby("model", sort=False):
        line, = ax.plot(runs["step"], runs[column], label=f"{name} train")
        tested = runs.dropna(subset=["test_loss"])
        if len(tested):
            ax.plot(tested["step"], tested["test_loss"], "o--", color=line.get_color(), label=f"{name} test")
    ax.set(xlabel="optimizer step", ylabel="cross-entropy loss (nats)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax
