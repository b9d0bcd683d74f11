"""What every figure shares: the slide style, loss curves and speed bars, the count models' lines, bands and
error bars over seeds, and saving a figure for slides.

Each study's figures live with the study (studies/), the others in plots. This module imports matplotlib only
when a figure is drawn (`pyplot()`): the command line imports the studies and never draws, and a process that
imports matplotlib spends half a second on it.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .counts import count_label
from .presets import ARTEFACTS_DIR

SLIDE_SIZE = (13.333, 7.5)  # inches: 16:9, a slide's shape
SLIDE_STYLE = {
    "figure.figsize": SLIDE_SIZE, "figure.constrained_layout.use": True, "font.size": 14,
    "axes.titlesize": 18, "axes.labelsize": 16, "xtick.labelsize": 14, "ytick.labelsize": 14,
    "legend.fontsize": 14, "legend.title_fontsize": 14, "figure.titlesize": 20, "axes.grid": True,
    "grid.alpha": 0.3,
}


def pyplot():
    """matplotlib.pyplot, imported on the first figure drawn."""
    import matplotlib.pyplot as plt
    return plt


def subplots(*args, **kwargs):
    """A new figure and its axes, as pyplot's subplots makes them, in the style in force."""
    return pyplot().subplots(*args, **kwargs)


def slide_axes():
    """A new slide-shaped figure's axes, for the drawing helpers called without an `ax`."""
    with pyplot().rc_context(SLIDE_STYLE):
        return subplots()[1]


def slide_figure(draw):
    """Draw a figure in the slide style (the style applies while its text is made)."""
    @functools.wraps(draw)
    def in_style(*args, **kwargs):
        with pyplot().rc_context(SLIDE_STYLE):
            return draw(*args, **kwargs)
    return in_style


# ---------------------------------------------------------------- loss and speed


def plot_loss_curves(history: pd.DataFrame, ax=None, title: str = "Training loss", column: str = "loss"):
    """Loss against step, one line per model in the history (and held-out loss as dashed points)."""
    ax = ax or slide_axes()
    for name, runs in history.groupby("model", sort=False):
        line, = ax.plot(runs["step"], runs[column], label=f"{name} train")
        tested = runs.dropna(subset=["test_loss"])
        if len(tested):
            ax.plot(tested["step"], tested["test_loss"], "o--", color=line.get_color(), label=f"{name} test")
    ax.set(xlabel="optimizer step", ylabel="cross-entropy loss (nats)", title=title)
    ax.legend()
    return ax


@slide_figure
def plot_history_panels(history: pd.DataFrame, title: str, test_loss: bool = False, counting: dict | None = None,
                        which=("unigram", "best")):
    """Loss against step, a line per model; with test_loss, a second panel of the held-out loss, with the count
    models of the same training text beside it."""
    fig, axes = subplots(1, 2 if test_loss else 1, squeeze=False)
    plot_loss_curves(history, ax=axes[0, 0], title="training loss")
    if test_loss:
        held_out = axes[0, 1]
        plot_loss_curves(history.dropna(subset=["test_loss"]), ax=held_out, title="held-out loss",
                         column="test_loss")
        draw_counting(held_out, counting, which)
        held_out.legend()
    fig.suptitle(title)
    return fig


def plot_speed_bars(names: list[str], tokens_per_s: list[float], ax=None, title: str = "Training speed"):
    """Tokens per second as horizontal bars on a log scale, each labelled with its value."""
    ax = ax or slide_axes()
    bars = ax.barh(names, tokens_per_s, color="tab:blue")
    ax.bar_label(bars, labels=[f"{value:,.0f}" for value in tokens_per_s], padding=3)
    ax.set_xscale("log")
    ax.set(xlabel="tokens / s (log scale)", title=title)
    ax.invert_yaxis()
    return ax


# ---------------------------------------------------------------- counting, drawn beside every held-out loss

COUNT_STYLES = {"unigram": dict(color="grey", linestyle=":", linewidth=2.5),
                "bigram": dict(color="dimgrey", linestyle="-.", linewidth=2),
                "same_k": dict(color="saddlebrown", linestyle="-.", linewidth=2),
                "best": dict(color="black", linestyle="--", linewidth=2)}
COUNTING_GID = "counting"  # every count model's line carries it, so that a test can find them


def count_lines(counting: dict, which=("unigram", "best")) -> list[tuple[str, float, dict]]:
    """(label, loss, style) of each count line asked for, labelled with its number; the best order once."""
    lines = {"unigram": ("unigram counts", counting["unigram"]), "bigram": ("bigram counts", counting["bigram"]),
             "best": (f"{count_label(counting['best_order'])} (best)", counting["best"])}
    orders = {"unigram": 1, "bigram": 2}
    if "same_k_order" in counting:  # the count model that reads as many tokens as a k-gram MLP
        order = counting["same_k_order"]
        lines["same_k"] = (f"{count_label(order)} (the same {order - 1} tokens)",
                           counting["orders"][str(order)]["nats_per_token"])
        orders["same_k"] = order
    duplicate = any(orders.get(name) == counting["best_order"] for name in which)
    shown = [name for name in which if not (name == "best" and duplicate)]
    return [(f"{lines[name][0]} {lines[name][1]:.2f}", lines[name][1], COUNT_STYLES[name]) for name in shown]


def draw_counting(ax, counting: dict | None, which=("unigram", "best"), vertical: bool = False) -> None:
    """The count models fitted on the same training text as the runs, as lines across a held-out-loss axis, each
    labelled with its loss. A line beyond the axis's data range extends it: what counting scores is the yardstick."""
    if not counting:
        return
    for label, loss, style in count_lines(counting, which):
        draw = ax.axvline if vertical else ax.axhline
        draw(loss, label=label, gid=COUNTING_GID, zorder=1, **style)


def plot_count_curve(ax, x, countings: list[dict], key: str, label: str, style_name: str) -> None:
    """A count model's loss at each point of a study whose points train on different text (one count model each)."""
    ax.plot(x, [counting[key] for counting in countings], label=label, gid=COUNTING_GID, zorder=1,
            **COUNT_STYLES[style_name])


# ---------------------------------------------------------------- seeds: bands and error bars

SPREAD = "bands and bars: ±1 s.d. over seeds"


def study_title(artefact: dict, what: str) -> str:
    seeds = len(artefact["config"].get("seeds", []))
    return f"{what} ({artefact['preset']} preset, {seeds} seeds)"


def mean_and_sd(values) -> tuple[np.ndarray, np.ndarray]:
    """Means and seed-to-seed standard deviations along the first axis (seeds x points)."""
    values = np.asarray(values, dtype=float)
    return values.mean(axis=0), values.std(axis=0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1:])


def plot_band(ax, x, values, label: str, **style):
    """A mean line over seeds with a band of ±1 standard deviation; values is (seeds, points)."""
    mean, sd = mean_and_sd(values)
    line, = ax.plot(x, mean, label=label, **style)
    ax.fill_between(x, mean - sd, mean + sd, color=line.get_color(), alpha=0.2, linewidth=0)
    return line


def errorbars(ax, x, groups: list[list[dict]], metric, label: str, **style):
    """A line through the mean of each point, with error bars of ±1 s.d. over its seeds."""
    values = [[metric(run) for run in group] for group in groups]
    means = [np.mean(v) for v in values]
    sds = [np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in values]
    return ax.errorbar(x, means, yerr=sds, label=label, capsize=5, marker="o", **style)


# ---------------------------------------------------------------- for slides


def save_figure(fig, name: str, folder: str | Path | None = None) -> Path:
    """Save a figure as <name>.png and <name>.svg beside the artefacts (artefacts/), for slides; the PNG's path."""
    folder = Path(folder or ARTEFACTS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    for kind in ("png", "svg"):
        temporary = folder / f".{name}.{kind}.tmp"
        fig.savefig(temporary, dpi=100, format=kind)
        os.replace(temporary, folder / f"{name}.{kind}")
    return folder / f"{name}.png"
