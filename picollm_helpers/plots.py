"""Section 9. Plots and widgets: every figure is drawn from an artefact, in one style made for slides.

A figure function takes an artefact (the dict of its JSON file) and returns a matplotlib
Figure, 16:9 with text at 14 pt or more. `FIGURES` names every figure of the seven notebooks
and the artefact it is drawn from, so `make figures` can redraw them all without training
anything; `save_figure` writes each as PNG and SVG beside its artefact.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import torch
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from .experiments import read_artefact
from .presets import ARTEFACTS_DIR
from .sampling import check_sampling_args, nucleus_mask

SLIDE_SIZE = (13.333, 7.5)  # inches: 16:9, a slide's shape
SLIDE_STYLE = {
    "figure.figsize": SLIDE_SIZE, "figure.constrained_layout.use": True, "font.size": 14,
    "axes.titlesize": 18, "axes.labelsize": 16, "xtick.labelsize": 14, "ytick.labelsize": 14,
    "legend.fontsize": 14, "legend.title_fontsize": 14, "figure.titlesize": 20, "axes.grid": True,
    "grid.alpha": 0.3,
}


def slide_axes():
    """A new slide-shaped figure's axes, for the drawing helpers called without an `ax`."""
    with plt.rc_context(SLIDE_STYLE):
        return plt.subplots()[1]


def slide_figure(draw):
    """Draw a figure in the slide style (the style applies while its text is made)."""
    @functools.wraps(draw)
    def in_style(*args, **kwargs):
        with plt.rc_context(SLIDE_STYLE):
            return draw(*args, **kwargs)
    return in_style


# ---------------------------------------------------------------- does every text fit?

FIT_TOLERANCE_PX = 1.0  # extents may touch or graze by a pixel: anti-aliasing, not a collision


def tick_labels_by_axis(figure) -> dict:
    """Each tick label of the figure, mapped to its axis: (the axis, whether a draw shows it).

    An axis keeps tick objects for ticks outside its view limits, which a draw leaves out.
    """
    labels = {}
    for ax in figure.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            slack = 1e-9 * max(abs(low), abs(high), 1.0)
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                shown = low - slack <= tick.get_loc() <= high + slack
                labels.update({label: (axis, shown) for label in (tick.label1, tick.label2)})
    return labels


def shown_texts(figure) -> list[tuple[str, Bbox, object]]:
    """Every text a draw of the figure shows: (its words, its extent in pixels, its group).

    A legend counts as one text, its frame. Tick labels of one axis share a group (they may crowd
    each other: that is the axis's business, not a collision); every other text is a group of its own.
    """
    figure.draw_without_rendering()
    legends = [legend for legend in figure.findobj(Legend) if legend.get_visible()]
    in_a_legend = {text for legend in legends for text in legend.findobj(Text)}
    tick_labels = tick_labels_by_axis(figure)
    texts = [(f"the legend ({', '.join(t.get_text() for t in legend.get_texts())})", legend.get_window_extent(),
              legend) for legend in legends]
    for text in figure.findobj(Text):
        group, shown = tick_labels.get(text, (text, True))
        if shown and text.get_visible() and text.get_text().strip() and text not in in_a_legend:
            texts.append((text.get_text(), text.get_window_extent(), group))
    return texts


def text_fit_problems(figure) -> list[str]:
    """What keeps a figure from fitting: each text that leaves the canvas, each pair of texts that overlap
    (tick labels of one axis aside), from the renderer's text extents. [] when every text fits."""
    canvas = figure.bbox.padded(FIT_TOLERANCE_PX)
    texts = shown_texts(figure)
    problems = [f"{words!r} leaves the canvas (x {box.x0:.0f} to {box.x1:.0f}, y {box.y0:.0f} to {box.y1:.0f} "
                f"of {figure.bbox.width:.0f} x {figure.bbox.height:.0f} px)"
                for words, box, _ in texts if not (canvas.contains(box.x0, box.y0) and canvas.contains(box.x1, box.y1))]
    for index, (words, box, group) in enumerate(texts):
        for other_words, other_box, other_group in texts[index + 1:]:
            overlap = Bbox.intersection(box, other_box)
            if group is not other_group and overlap is not None and min(overlap.size) > FIT_TOLERANCE_PX:
                problems.append(f"{words!r} overlaps {other_words!r} ({overlap.width:.0f} x {overlap.height:.0f} px)")
    return problems


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
def plot_history_panels(history: pd.DataFrame, title: str, test_loss: bool = False):
    """Loss against step, a line per model; with test_loss, a second panel of the held-out loss."""
    fig, axes = plt.subplots(1, 2 if test_loss else 1, squeeze=False)
    plot_loss_curves(history, ax=axes[0, 0], title="training loss")
    if test_loss:
        plot_loss_curves(history.dropna(subset=["test_loss"]), ax=axes[0, 1], title="held-out loss",
                         column="test_loss")
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


@slide_figure
def plot_kgram_comparison(artefact: dict):
    """Loss against step for each design, and tokens/s of each design and of the starter's loop."""
    results = artefact["results"]
    fig, (left, right) = plt.subplots(1, 2)
    plot_loss_curves(pd.DataFrame(results["history"]), ax=left, title="training loss, same batches and seed")
    names = [*results["designs"], "starter's loop,\nas the starter runs", "starter's loop,\nin this process"]
    speeds = [row["tokens_per_s"] for row in results["designs"].values()] + [
        results["starter_loop"]["tokens_per_s"], results["starter_loop_in_this_process"]["tokens_per_s"]]
    plot_speed_bars(names, speeds, ax=right, title="training speed")
    fig.suptitle(f"k-gram MLP designs ({artefact['preset']} preset, {artefact['device']})")
    return fig


@slide_figure
def plot_transformer_comparison(artefact: dict):
    """Loss against step and tokens/s for every preset and baseline in transformer_metrics.json."""
    results = artefact["results"]
    fig, (left, right) = plt.subplots(1, 2)
    plot_loss_curves(pd.DataFrame(results["history"]), ax=left, title="training loss, same batches and seed")
    rows = results["models"]
    plot_speed_bars(list(rows), [row["tokens_per_s"] for row in rows.values()], ax=right, title="training speed")
    fig.suptitle(f"Transformer presets and baselines ({artefact['preset']} preset, {artefact['device']})")
    return fig


def plot_attention_map(weights, labels: list[str], ax=None, title: str = "attention"):
    """One head's attention weights (query rows, key columns) as a heat map over the prompt's tokens."""
    ax = ax or slide_axes()
    image = ax.imshow(torch.as_tensor(weights).detach().cpu().numpy(), cmap="viridis", vmin=0.0)
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    ax.set(xlabel="attends to (key)", ylabel="token (query)", title=title)
    ax.grid(False)
    plt.colorbar(image, ax=ax, fraction=0.046)
    return ax


@slide_figure
def plot_attention(artefact: dict):
    """Every head of one block's attention over the prompt, side by side, from attention_map.json."""
    results = artefact["results"]
    heads = results["weights"]
    fig, axes = plt.subplots(1, len(heads), squeeze=False)
    for index, (ax, weights) in enumerate(zip(axes.flat, heads), start=1):
        plot_attention_map(weights, results["tokens"], ax=ax, title=f"head {index}")
    fig.suptitle(f"{artefact['config']['model']}: attention of block {artefact['config']['block']} over "
                 f"{artefact['config']['prompt']!r}")
    return fig


@slide_figure
def plot_sanity_check(artefact: dict):
    """The notes' three steps and the longer run of notebook 01, with ln V for reference, from sanity_check.json."""
    results = artefact["results"]
    fig, ax = plt.subplots()
    longer = results["longer_run_losses"]
    ax.plot(range(1, len(longer) + 1), longer, label=f"LSTM, {len(longer)} steps")
    ax.plot(range(1, len(results["epoch_losses"]) + 1), results["epoch_losses"], "o-", label="3 steps (the command)")
    ax.axhline(results["ln_vocab"], color="grey", linestyle=":", label="ln V")
    ax.set(xlabel="optimizer step", ylabel="cross-entropy loss (nats)", title=f"LSTM on {artefact['config']['data']}")
    ax.legend()
    return fig


@slide_figure
def plot_kgram_windows(artefact: dict):
    """Train and held-out loss of the two context windows, from kgram_windows.json."""
    config = artefact["config"]
    return plot_history_panels(pd.DataFrame(artefact["results"]["history"]),
                               f"{config['variant']} design, two context windows ({artefact['preset']} preset)",
                               test_loss=True)


@slide_figure
def plot_learning_speed(artefact: dict):
    """Held-out loss against seconds of training, a line per way of training, from learning_speed.json."""
    fig, ax = plt.subplots()
    for label, run in artefact["results"]["runs"].items():
        seconds, losses = zip(*run["curve"])
        ax.plot(seconds, losses, "o-", label=f"{label} ({run['tokens_per_s']:,.0f} tokens/s)")
    config = artefact["config"]
    ax.set(xlabel="seconds of training", ylabel="held-out loss (nats / token, all 50,257 ids)",
           title=f"Learning speed: {config['train_file']['name']} -> {config['heldout_file']['name']} "
                 f"({artefact['device']})")
    ax.legend()
    return fig


@slide_figure
def plot_step_breakdown(artefact: dict):
    """Milliseconds of one training step by part, a bar per head, from step_breakdown.json."""
    breakdowns = artefact["results"]["breakdowns"]
    fig, ax = plt.subplots()
    heads = list(breakdowns)
    left = [0.0] * len(heads)
    for part in next(iter(breakdowns.values()))["parts"]:
        widths = [breakdowns[head]["parts"][part]["ms"] for head in heads]
        ax.barh(heads, widths, left=left, label=part)
        left = [a + b for a, b in zip(left, widths)]
    ax.bar_label(ax.containers[-1], labels=[f"{total:,.0f} ms" for total in left], padding=3)
    ax.set(xlabel="milliseconds per training step", title=f"Where a training step's time goes "
                                                          f"({artefact['preset']} preset, {artefact['device']})")
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    return fig


# ---------------------------------------------------------------- sampling (notebook 04 and its lab)

NUCLEUS_COLOUR, TAIL_COLOUR, CUT_OFF_COLOUR = "tab:blue", "lightgrey", "tab:red"


def token_label(enc, token_id: int) -> str:
    """A token as tick-label text: a space shows as '␣', a newline as '↵', and '$' starts no math."""
    return enc.decode([token_id]).replace(" ", "␣").replace("\n", "↵").replace("$", r"\$")


def next_token_summary(log_probs: torch.Tensor, enc, p: float, temperature: float = 1.0, top_n: int = 30) -> dict:
    """What the next-token chart shows, from a 1-D vector of logits or log-probabilities: the top_n most
    probable tokens (labels, probabilities, whether in the top-p nucleus), and the nucleus's size and mass."""
    check_sampling_args(temperature, top_p=p)
    probs = (log_probs.detach().float().cpu() / temperature).softmax(dim=-1)
    kept = nucleus_mask(probs, p)
    top = probs.topk(min(top_n, len(probs)))
    return {"p": p, "temperature": temperature, "vocab_size": len(probs), "nucleus_size": int(kept.sum()),
            "nucleus_mass": float(probs[kept].sum()), "tokens": [token_label(enc, i) for i in top.indices.tolist()],
            "probs": top.values.tolist(), "in_nucleus": kept[top.indices].tolist()}


def plot_next_token_distribution(summary: dict, ax=None):
    """The most probable next tokens as bars: the top-p nucleus coloured, a dashed line at its cut-off."""
    ax = ax or slide_axes()
    shown, size = len(summary["tokens"]), summary["nucleus_size"]
    ax.bar(range(shown), summary["probs"], color=[NUCLEUS_COLOUR if kept else TAIL_COLOUR
                                                  for kept in summary["in_nucleus"]])
    ax.set_xticks(range(shown), summary["tokens"], rotation=90)
    ax.set_xlim(-0.7, shown - 0.3)
    text = (f"nucleus at p = {summary['p']:.2f}: {size:,} tokens holding {summary['nucleus_mass']:.1%} "
            "of the probability")
    if size <= shown:
        ax.axvline(size - 0.5, color=CUT_OFF_COLOUR, linestyle="--", label="cut-off")
        left_half = size <= shown / 2
        ax.annotate(text, xy=(size - 0.5, 0.97), xycoords=("data", "axes fraction"), va="top",
                    xytext=(5 if left_half else -5, 0), textcoords="offset points", color=CUT_OFF_COLOUR,
                    ha="left" if left_half else "right")
    else:
        ax.annotate(f"{text}; the cut-off lies beyond the {shown} shown →", xy=(0.99, 0.97),
                    xycoords="axes fraction", ha="right", va="top", color=CUT_OFF_COLOUR)
    ax.set(ylabel="probability", title=f"Next token (temperature {summary['temperature']:g}): "
                                       f"the {shown} most probable of {summary['vocab_size']:,}")
    return ax


@slide_figure
def plot_next_token(artefact: dict):
    """Notebook 04's chart of the next token after its prompt, from next_token.json."""
    fig, ax = plt.subplots()
    plot_next_token_distribution(artefact["results"], ax=ax)
    ax.set_title(f"{artefact['config']['model']}: next token after {artefact['config']['prompt']!r}")
    return fig


DIVERSITY_PANELS = {  # each panel's title: what it measures, and how
    "distinct_1": "distinct-1: unique tokens / tokens",
    "distinct_2": "distinct-2: unique bigrams / bigrams",
    "mean_logprob": "mean log-probability (nats / token)",
    "mean_nucleus_size": "mean nucleus size (tokens)",
}


@slide_figure
def plot_sampling_diversity(artefact: dict):
    """Per sampling setting, how varied the samples are and how likely the model finds them; a line per model.

    Each panel names its measure in its title, so that the panels of a 2 x 2 grid keep their height.
    """
    rows = pd.DataFrame(artefact["results"]["rows"])
    fig, axes = plt.subplots(2, 2, sharex=True)
    for name, runs in rows.groupby("model", sort=False):
        for ax, column in zip(axes.flat, DIVERSITY_PANELS):
            ax.plot(runs["setting"], runs[column], "o-", label=name)
    for ax, title in zip(axes.flat, DIVERSITY_PANELS.values()):
        ax.set_title(title, fontsize=plt.rcParams["axes.labelsize"])
    for ax in axes[-1]:
        ax.set_xlabel("sampling")
    axes.flat[-1].set_yscale("log")
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="outside right center", title="model")
    config = artefact["config"]
    fig.suptitle(f"{config['num_samples']} samples of {config['max_new_tokens']} tokens from "
                 f"{config['prompt']!r} per setting ({artefact['preset']} preset)")
    return fig


# ---------------------------------------------------------------- sweeps (notebooks 05 to 07)

def ok_runs(artefact: dict) -> pd.DataFrame:
    """The successful runs of a sweep artefact, config fields and results as columns."""
    return pd.DataFrame([{**run["config"], **{k: v for k, v in run.items() if k != "config"}}
                         for run in artefact["results"]["runs"] if run["status"] == "ok"])


def sweep_title(artefact: dict, what: str) -> str:
    return f"{what} ({artefact['preset']} preset, {artefact['device']})"


@slide_figure
def plot_custom_data_sweep(artefact: dict):
    """Final training loss against corpus size, a line per model."""
    runs = ok_runs(artefact)
    fig, ax = plt.subplots()
    for model, rows in runs.groupby("model", sort=False):
        ax.plot(rows["sequences"], rows["final_loss"], "o-", label=model)
    ax.set(xlabel="training sequences", ylabel="final training loss (nats)",
           title=sweep_title(artefact, f"{artefact['config']['steps']} steps at each corpus size"))
    ax.legend()
    return fig


@slide_figure
def plot_training_budget(artefact: dict):
    """Train and held-out loss against steps per epoch, a pair of lines per model."""
    runs = ok_runs(artefact)
    fig, ax = plt.subplots()
    for model, rows in runs.groupby("model", sort=False):
        line, = ax.plot(rows["steps_per_epoch"], rows["final_loss"], "o-", label=f"{model}, train")
        ax.plot(rows["steps_per_epoch"], rows["final_test_loss"], "s--", color=line.get_color(),
                label=f"{model}, held out")
    ax.set(xlabel=f"steps per epoch ({artefact['config']['epochs']} epochs)", ylabel="loss (nats)",
           title=sweep_title(artefact, "training budget, 60/40 split"))
    ax.legend()
    return fig


@slide_figure
def plot_overfitting(artefact: dict):
    """Per model, train and held-out loss against step, with the step of the lowest held-out loss marked."""
    runs = ok_runs(artefact)
    fig, axes = plt.subplots(1, len(runs), squeeze=False)
    for ax, (_, run) in zip(axes.flat, runs.iterrows()):
        history = pd.DataFrame(run["history"])
        evaluated = history.dropna(subset=["test_loss"])
        ax.plot(history["step"], history["loss"], label="train", alpha=0.8)
        ax.plot(evaluated["step"], evaluated["test_loss"], "o-", label="held out")
        ax.axvline(run["best_test_step"], color="tab:red", linestyle="--",
                   label=f"lowest held-out loss, step {run['best_test_step']}")
        ax.set(xlabel="step", ylabel="loss (nats)", title=run["model"])
        ax.legend()
    config = artefact["config"]
    fig.suptitle(sweep_title(artefact, f"{config['train_tokens']:,} training tokens, "
                                       f"{config['heldout_tokens']:,} held out"))
    return fig


@slide_figure
def plot_hparam_heatmaps(artefact: dict, rows: str = "embed_size", columns: str = "learning_rate",
                         value: str = "final_test_loss"):
    """Per model, a heat map of `value` over two parameters (the other parameters at their most common value)."""
    runs = ok_runs(artefact)
    models = list(dict.fromkeys(runs["model"]))
    fig, axes = plt.subplots(1, len(models), squeeze=False)
    for ax, model in zip(axes.flat, models):
        subset = runs[runs["model"] == model]
        for other in {"embed_size", "block_size", "learning_rate", "depth"} - {rows, columns}:
            subset = subset[subset[other] == subset[other].mode().iloc[0]]
        table = subset.pivot_table(index=rows, columns=columns, values=value)
        image = ax.imshow(table.to_numpy(), cmap="viridis_r", aspect="auto")
        ax.grid(False)
        ax.set_xticks(range(len(table.columns)), [f"{c:g}" for c in table.columns])
        ax.set_yticks(range(len(table.index)), [f"{r:g}" for r in table.index])
        for (i, j), loss in pd.DataFrame(table.to_numpy()).stack().items():
            on_light_cell = image.norm(loss) < 0.5  # viridis_r is yellow at the low end
            ax.text(j, i, f"{loss:.2f}", ha="center", va="center", color="black" if on_light_cell else "white")
        ax.set(xlabel=columns, ylabel=rows, title=f"{model}: {value}")
        plt.colorbar(image, ax=ax)
    fig.suptitle(sweep_title(artefact, "hyperparameters"))
    return fig


@slide_figure
def plot_quality_against_speed(artefact: dict):
    """Held-out loss against training tokens/s, a point per config: lower and to the right is better."""
    runs = ok_runs(artefact)
    fig, ax = plt.subplots()
    for model, rows in runs.groupby("model", sort=False):
        ax.scatter(rows["tokens_per_s"], rows["final_test_loss"], label=model, s=40)
    ax.set_xscale("log")
    ax.set(xlabel="training tokens / s (log scale)", ylabel="held-out loss (nats)",
           title=sweep_title(artefact, "quality against speed"))
    ax.legend()
    return fig


def save_figure(fig, name: str, folder: str | Path | None = None) -> Path:
    """Save a figure as <name>.png and <name>.svg beside the artefacts (artefacts/), for slides; the PNG's path."""
    folder = Path(folder or ARTEFACTS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    for kind in ("png", "svg"):
        temporary = folder / f".{name}.{kind}.tmp"
        fig.savefig(temporary, dpi=100, format=kind)
        os.replace(temporary, folder / f"{name}.{kind}")
    return folder / f"{name}.png"


# Every figure of the seven notebooks: its name, the artefact it is drawn from, and how.
FIGURES = {
    "sanity_check": ("sanity_check", plot_sanity_check),
    "kgram_comparison": ("kgram_comparison", plot_kgram_comparison),
    "kgram_windows": ("kgram_windows", plot_kgram_windows),
    "transformer_metrics": ("transformer_metrics", plot_transformer_comparison),
    "learning_speed": ("learning_speed", plot_learning_speed),
    "step_breakdown": ("step_breakdown", plot_step_breakdown),
    "attention_map": ("attention_map", plot_attention),
    "next_token": ("next_token", plot_next_token),
    "sampling_diversity": ("sampling_diversity", plot_sampling_diversity),
    "custom_data_sweep": ("custom_data_sweep", plot_custom_data_sweep),
    "training_budget_sweep": ("training_budget_sweep", plot_training_budget),
    "overfitting_sweep": ("overfitting_sweep", plot_overfitting),
    "hparam_heatmaps": ("hparam_sweep", plot_hparam_heatmaps),
    "hparam_quality_speed": ("hparam_sweep", plot_quality_against_speed),
}


def draw_figure(name: str, artefact: dict | None = None):
    """One of FIGURES, drawn from its artefact (read from the artefacts folder when not given)."""
    artefact_name, draw = FIGURES[name]
    return draw(artefact or read_artefact(artefact_name))


def show_figure(name: str, artefact: dict | None = None):
    """Draw one of FIGURES from its artefact and save it beside the artefacts (PNG and SVG); the figure."""
    figure = draw_figure(name, artefact)
    save_figure(figure, name)
    return figure


def redraw_figures(folder: str | Path | None = None) -> list[Path]:
    """Redraw every figure of the notebooks from the artefacts and save it (PNG and SVG); trains nothing."""
    saved = []
    for name in FIGURES:
        figure = draw_figure(name)
        saved.append(save_figure(figure, name, folder))
        plt.close(figure)
    return saved
