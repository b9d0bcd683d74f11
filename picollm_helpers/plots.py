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
import numpy as np
import pandas as pd
import torch
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from .artefacts import read_artefact
from .presets import ARTEFACTS_DIR
from .sampling import check_sampling_args, nucleus_mask
from .speed import (COMMAND_LINE, COMMAND_LINE_COMPILED, PACKED_COMPACT, PACKED_FULL, PRESET_TRANSFORMER, REFERENCE,
                    STARTER_WAY)
from .studies import count_label, flops_words, runs_by

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
def plot_history_panels(history: pd.DataFrame, title: str, test_loss: bool = False, counting: dict | None = None,
                        which=("unigram", "best")):
    """Loss against step, a line per model; with test_loss, a second panel of the held-out loss, with the count
    models of the same training text beside it."""
    fig, axes = plt.subplots(1, 2 if test_loss else 1, squeeze=False)
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
def plot_kgram_real_text(artefact: dict):
    """Training and held-out loss of each k-gram design and context window on real text, from kgram_real_text.json."""
    config, results = artefact["config"], artefact["results"]
    return plot_history_panels(pd.DataFrame(results["history"]),
                               f"k-gram designs and windows on the plays, {config['heldout']} held out "
                               f"({artefact['preset']} preset)", test_loss=True, counting=results.get("counting"),
                               which=("unigram", "same_k", "best"))


SPEED_RUN_NAMES = {STARTER_WAY: "the starter's way", PACKED_FULL: "packed, full head",
                   PACKED_COMPACT: "packed, compact head", PRESET_TRANSFORMER: "the cpu preset's Transformer",
                   COMMAND_LINE: "the command line's defaults", COMMAND_LINE_COMPILED: "the defaults, compiled",
                   REFERENCE: "reference recipe, same model"}


@slide_figure
def plot_learning_speed(artefact: dict):
    """Held-out loss against seconds of training on each held-out work, a line per way of training, from
    learning_speed.json."""
    runs = artefact["results"]["runs"]
    works = list(next(iter(runs.values()))["curves"])
    fig, axes = plt.subplots(1, len(works), sharey=True, squeeze=False)
    counting = artefact["results"].get("counting", {})
    for ax, work in zip(axes.flat, works):
        for label, run in runs.items():
            seconds, losses, _ = zip(*run["curves"][work])
            ax.plot(seconds, losses, "o-", label=f"{SPEED_RUN_NAMES.get(label, label)} "
                                                 f"({run['tokens_per_s']:,.0f} tokens/s)")
        draw_counting(ax, counting.get(work))
        ax.set(xlabel="seconds of training", title=f"held out: {work}")
    axes[0, 0].set_ylabel("held-out loss (nats / token)")
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=2)
    fig.suptitle(f"Learning speed on the plays ({artefact['device']})")
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
        ax.margins(x=0.12)  # the first setting's name clear of the y axis's lowest tick label
    for ax in axes[-1]:
        ax.set_xlabel("sampling")
    axes.flat[-1].set_yscale("log")
    fig.legend(*axes.flat[0].get_legend_handles_labels(), loc="outside right center", title="model")
    config = artefact["config"]
    fig.suptitle(f"{config['num_samples']} samples of {config['max_new_tokens']} tokens from "
                 f"{config['prompt']!r} per setting ({artefact['preset']} preset)")
    return fig


# ---------------------------------------------------------------- studies (notebooks 03, 05, 06 and 07)

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


def curve_by_step(runs: list[dict]) -> dict:
    """A model's race curves aligned by step: the steps every seed reached, and the seconds, tokens and
    held-out loss of each seed at them (seeds x points)."""
    steps = sorted(set.intersection(*({point["step"] for point in run["curve"]} for run in runs)))
    at = [{point["step"]: point for point in run["curve"]} for run in runs]
    return {"steps": steps, **{key: np.array([[points[step][key] for step in steps] for points in at])
                               for key in ("seconds", "tokens", "loss")}}


@slide_figure
def plot_fastest_learner(artefact: dict):
    """Held-out loss against seconds and against tokens seen, a band per model, from fastest_learner.json."""
    fig, (by_time, by_tokens) = plt.subplots(1, 2, sharey=True)
    for (name,), runs in runs_by(artefact["results"]["runs"], "model").items():
        curve = curve_by_step(runs)
        line = plot_band(by_time, curve["seconds"].mean(axis=0), curve["loss"], label=name)
        plot_band(by_tokens, curve["tokens"].mean(axis=0), curve["loss"], label=name, color=line.get_color())
    for ax in (by_time, by_tokens):
        draw_counting(ax, artefact["results"].get("counting"), ("unigram", "bigram", "best"))
    by_time.set(xlabel="seconds of training", ylabel="held-out loss (nats / token)")
    by_tokens.set(xlabel="tokens seen (log scale)", xscale="log")
    fig.legend(*by_time.get_legend_handles_labels(), loc="outside right center", title=SPREAD.split(":")[0])
    config = artefact["config"]
    fig.suptitle(study_title(artefact, f"Which model learns fastest: {config['budget']['seconds']:g} s each, "
                                       f"{config['heldout']} held out"))
    return fig


def errorbars(ax, x, groups: list[list[dict]], metric, label: str, **style):
    """A line through the mean of each point, with error bars of ±1 s.d. over its seeds."""
    values = [[metric(run) for run in group] for group in groups]
    means = [np.mean(v) for v in values]
    sds = [np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in values]
    return ax.errorbar(x, means, yerr=sds, label=label, capsize=5, marker="o", **style)


@slide_figure
def plot_own_text_data(artefact: dict):
    """Held-out and training loss against training tokens, from own_text.json."""
    sizes = {tokens: group for (question, tokens), group in runs_by(artefact["results"]["runs"], "question",
                                                                     "tokens").items() if question == "data"}
    tokens = sorted(sizes)
    fig, ax = plt.subplots()
    errorbars(ax, tokens, [sizes[t] for t in tokens], lambda run: run["best_standard_loss"],
              label=f"held out ({artefact['config']['standard_heldout']}), at its best")
    errorbars(ax, tokens, [sizes[t] for t in tokens], lambda run: run["standard_loss"], label="held out, at the end",
              linestyle=":")
    errorbars(ax, tokens, [sizes[t] for t in tokens], lambda run: run["train_loss"], label="training", linestyle="--")
    counting = artefact["results"].get("counting")
    if counting:
        countings = [counting["sizes"][str(t)] for t in tokens]
        plot_count_curve(ax, tokens, countings, "unigram", "unigram counts of the same text", "unigram")
        plot_count_curve(ax, tokens, countings, "best", "best count model of the same text", "best")
    ax.set(xscale="log", xlabel="training tokens (the first N of the plays; log scale)", ylabel="loss (nats / token)",
           title=study_title(artefact, f"How much text: {artefact['config']['budget']['steps']} steps at every size"))
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right center", title=SPREAD.split(":")[0])
    return fig


@slide_figure
def plot_own_text_blend(artefact: dict):
    """Your text's held-out loss and the standard work's against your text's share of training, and the
    trade-off between the two, from own_text.json."""
    shares = {share: group for (question, share), group in runs_by(artefact["results"]["runs"], "question",
                                                                    "share").items() if question == "blend"}
    order = sorted(shares)
    fig, (by_share, tradeoff) = plt.subplots(1, 2)
    config = artefact["config"]
    errorbars(by_share, [100 * s for s in order], [shares[s] for s in order], lambda run: run["best_your_loss"],
              label="your held-out lines, at the best evaluation")
    errorbars(by_share, [100 * s for s in order], [shares[s] for s in order], lambda run: run["standard_loss"],
              label=config["standard_heldout"])
    counting = artefact["results"].get("counting")
    if counting:
        texts = ["plays" if s == 0 else "your text" if s == 1 else "both" for s in order]
        for held_out, name in (("your_lines", "your lines"), ("standard", config["standard_heldout"])):
            countings = [counting[held_out][text] for text in texts]
            plot_count_curve(by_share, [100 * s for s in order], countings, "best", f"counts, {name}", "best")
            plot_count_curve(by_share, [100 * s for s in order], countings, "unigram", f"unigram counts, {name}",
                             "unigram")
    by_share.set(xlabel="your text's share of training (%)", ylabel="held-out loss (nats / token)")
    by_share.legend(title=SPREAD)
    your = [np.mean([run["best_your_loss"] for run in shares[s]]) for s in order]
    standard = [np.mean([run["standard_loss"] for run in shares[s]]) for s in order]
    tradeoff.plot(standard, your, "o-")
    for share, x, y in zip(order, standard, your):
        tradeoff.annotate(f"{share:.0%}", (x, y), textcoords="offset points", xytext=(8, 4))
    tradeoff.set(xlabel=f"loss on {config['standard_heldout']}", ylabel="loss on your lines (best)",
                 title="the trade-off (your share beside each point)")
    fig.suptitle(study_title(artefact, f"Blending your text ({config['your_text']}) with the plays"))
    return fig


@slide_figure
def plot_overfitting(artefact: dict):
    """The plain run's training and held-out loss with its turning point, and every remedy's final held-out
    loss beside early stopping's, from overfitting.json."""
    remedies = {remedy: group for (remedy,), group in runs_by(artefact["results"]["runs"], "remedy").items()}
    plain = remedies["none"]
    fig, (curves, bars) = plt.subplots(1, 2, width_ratios=(3, 2))
    histories = [pd.DataFrame(run["history"]) for run in plain]
    steps = histories[0]["step"].to_numpy()
    plot_band(curves, steps, [h["loss"].rolling(10, min_periods=1).mean() for h in histories], label="training")
    evaluated = [h.dropna(subset=["test_loss"]) for h in histories]
    plot_band(curves, evaluated[0]["step"].to_numpy(), [h["test_loss"] for h in evaluated], label="held out",
              marker="o")
    turning = np.mean([run["turning_step"] for run in plain])
    curves.axvline(turning, color="tab:red", linestyle="--", label=f"turning point (step {turning:.0f})")
    counting = artefact["results"].get("counting", {})
    draw_counting(curves, counting.get("one slice"))
    curves.set(xlabel="step", ylabel="loss (nats / token)", title="no remedy")
    curves.legend(title=SPREAD)
    labels = ["early stopping", *[remedy for remedy in remedies if remedy != "none"], "none (to the end)"]
    values = [[run["lowest_loss"] for run in plain], *[[run["final_loss"] for run in remedies[remedy]]
                                                         for remedy in labels[1:-1]], [run["final_loss"] for run in plain]]
    bars.barh(labels, [np.mean(v) for v in values], xerr=[np.std(v, ddof=1) for v in values], capsize=5,
              color="tab:blue")
    bars.set(xlabel="final held-out loss (nats / token)", title="the remedies")
    slice_counts, more_counts = counting.get("one slice"), counting.get("more data")
    if slice_counts and more_counts:
        bars.axvline(slice_counts["best"], gid=COUNTING_GID, label=f"counts of the slice {slice_counts['best']:.2f}",
                     **COUNT_STYLES["best"])
        bars.axvline(more_counts["best"], gid=COUNTING_GID, label=f"counts of 4x the slice {more_counts['best']:.2f}",
                     **{**COUNT_STYLES["best"], "color": "tab:green"})
        bars.legend(loc="upper right")
    reference = [np.mean(v) for v in values] + ([slice_counts["best"], more_counts["best"]] if slice_counts else [])
    bars.set_xlim(min(reference) - 0.3, max(reference) + 0.2)
    bars.invert_yaxis()
    fig.suptitle(study_title(artefact, f"Overfitting {artefact['config']['slice_tokens']:,} tokens, "
                                       f"{artefact['config']['heldout']} held out"))
    return fig


def rate_cells(artefact: dict) -> dict[tuple[float, int], list[float]]:
    """The held-out losses of every (learning rate, width) cell of hyperparameter_rates.json, over the seeds."""
    return {(rate, width): [run["loss"] for run in group]
            for (rate, width), group in runs_by(artefact["results"]["runs"], "learning_rate", "width").items()}


@slide_figure
def plot_hyperparameter_heatmap(artefact: dict):
    """Held-out loss over learning rate and width at the tuning budget, each cell its mean and seed-to-seed s.d., the
    rate chosen for each width outlined, from hyperparameter_rates.json. A width's grid can be wider than another's
    (grown where its best lay at an edge); cells it never tried are blank."""
    cells = rate_cells(artefact)
    rates, widths = sorted({rate for rate, _ in cells}), sorted({width for _, width in cells})
    means = np.array([[np.mean(cells[(rate, width)]) if (rate, width) in cells else np.nan for rate in rates]
                      for width in widths])
    fig, ax = plt.subplots()
    image = ax.imshow(means, cmap="viridis_r", aspect="auto", origin="lower")
    ax.grid(False)
    ax.set_xticks(range(len(rates)), [f"{rate:g}" for rate in rates])
    ax.set_yticks(range(len(widths)), [str(width) for width in widths])
    for (rate, width), values in cells.items():
        i, j = widths.index(width), rates.index(rate)
        light = image.norm(means[i, j]) < 0.5  # viridis_r is yellow at the low end
        spread_text = f"\n± {np.std(values, ddof=1):.2f}" if len(values) > 1 else ""
        ax.text(j, i, f"{np.mean(values):.2f}{spread_text}", ha="center", va="center",
                color="black" if light else "white")
    for width, rate in artefact["results"]["chosen"].items():
        ax.add_patch(plt.Rectangle((rates.index(rate) - 0.5, widths.index(int(width)) - 0.5), 1, 1, fill=False,
                                   edgecolor="tab:red", linewidth=3))
    ax.set(xlabel="peak learning rate", ylabel="width (d_model)")
    bar = plt.colorbar(image, ax=ax, label="held-out loss (nats / token)")
    counting = artefact["results"].get("counting")
    if counting:
        for label, loss, style in count_lines(counting, ("bigram", "best")):
            bar.ax.axhline(loss, label=label, gid=COUNTING_GID, **{**style, "color": "red"})
        low, high = np.nanmin(means), np.nanmax(means)
        bar.ax.set_ylim(min(low, counting["best"]) - 0.02, max(high, counting["bigram"]) + 0.02)
    fig.suptitle(study_title(artefact, f"Learning rate x width, {artefact['config']['tokens']:,} tokens "
                                       "(counts on the bar)"))
    return fig


def budget_points(artefact: dict) -> dict[int, dict[float, list[dict]]]:
    """The runs of hyperparameters.json by width, then by budget: {width: {flops: runs}}."""
    table: dict[int, dict[float, list[dict]]] = {}
    for (width, flops), group in runs_by(artefact["results"]["runs"], "width", "flops").items():
        table.setdefault(width, {})[flops] = group
    return {width: dict(sorted(points.items())) for width, points in sorted(table.items())}


@slide_figure
def plot_hyperparameter_budgets(artefact: dict):
    """Held-out loss against training compute, a line per width (each at its own learning rate), the best width at
    each budget marked, and the count models of the same text, from hyperparameters.json."""
    fig, ax = plt.subplots()
    rates = artefact["config"]["learning_rates"]
    best = {float(flops): width for flops, width in artefact["results"]["best_widths"].items()}
    for width, points in budget_points(artefact).items():
        budgets = list(points)
        line = errorbars(ax, budgets, list(points.values()), lambda run: run["loss"],
                         label=f"width {width} (learning rate {rates[str(width)]:g})")
        won = [flops for flops in budgets if best[flops] == width]
        ax.plot(won, [np.mean([run["loss"] for run in points[flops]]) for flops in won], "*", markersize=22,
                color=line[0].get_color())
    draw_counting(ax, artefact["results"].get("counting"), ("unigram", "bigram", "best"))
    ax.plot([], [], "*", color="grey", markersize=16, label="the best width at that budget")
    ax.set(xscale="log", xlabel="training compute (FLOPs, log scale)", ylabel="held-out loss (nats / token)")
    ax.set_xticks(sorted(best), [flops_words(flops) for flops in sorted(best)])
    ax.minorticks_off()
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right center", title=SPREAD.split(":")[0])
    fig.suptitle(study_title(artefact, "Which width for the compute"))
    return fig


@slide_figure
def plot_hyperparameter_speed(artefact: dict):
    """Held-out loss against seconds of training, a line per width through its budgets, from hyperparameters.json:
    the same runs, for the question a budget in seconds poses."""
    fig, ax = plt.subplots()
    for width, points in budget_points(artefact).items():
        seconds = [np.mean([run["seconds"] for run in runs]) for runs in points.values()]
        errorbars(ax, seconds, list(points.values()), lambda run: run["loss"],
                  label=f"width {width} ({np.mean([run['tokens_per_s'] for runs in points.values() for run in runs]):,.0f}"
                        " tokens/s)")
    draw_counting(ax, artefact["results"].get("counting"), ("unigram", "bigram", "best"))
    ax.set(xscale="log", xlabel="seconds of training (log scale)", ylabel="held-out loss (nats / token)")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right center", title=SPREAD.split(":")[0])
    fig.suptitle(study_title(artefact, "Quality against seconds: the same runs"))
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
    "kgram_real_text": ("kgram_real_text", plot_kgram_real_text),
    "fastest_learner": ("fastest_learner", plot_fastest_learner),
    "learning_speed": ("learning_speed", plot_learning_speed),
    "step_breakdown": ("step_breakdown", plot_step_breakdown),
    "attention_map": ("attention_map", plot_attention),
    "next_token": ("next_token", plot_next_token),
    "sampling_diversity": ("sampling_diversity", plot_sampling_diversity),
    "own_text_data": ("own_text", plot_own_text_data),
    "own_text_blend": ("own_text", plot_own_text_blend),
    "overfitting": ("overfitting", plot_overfitting),
    "hyperparameter_heatmap": ("hyperparameter_rates", plot_hyperparameter_heatmap),
    "hyperparameter_budgets": ("hyperparameters", plot_hyperparameter_budgets),
    "hyperparameter_speed": ("hyperparameters", plot_hyperparameter_speed),
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
