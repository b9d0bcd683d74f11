"""Section 9. Plots and widgets: every figure is drawn from an artefact, in one style made for slides.

A figure function takes an artefact (the dict of its JSON file) and returns a matplotlib
Figure, 16:9 with text at 14 pt or more (drawing.py: the style and what every figure shares).
A study's figures live with the study (studies/); this module draws the others (the sanity
check, attention, learning speed, where a step's time goes, the next-token chart) and names
every figure of the seven notebooks and the artefact it is drawn from in `FIGURES`, so `make
figures` can redraw them all without training anything; `save_figure` writes each as PNG and
SVG beside its artefact.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import torch
from matplotlib.legend import Legend
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from .artefacts import read_artefact
from .drawing import draw_counting, save_figure, slide_axes, slide_figure
from .sampling import check_sampling_args, nucleus_mask
from .speed import (COMMAND_LINE, COMMAND_LINE_COMPILED, PACKED_COMPACT, PACKED_FULL, PRESET_TRANSFORMER, REFERENCE,
                    STARTER_WAY)
from .studies import (plot_fastest_learner, plot_hyperparameter_budgets, plot_hyperparameter_heatmap,
                      plot_hyperparameter_speed, plot_kgram_comparison, plot_kgram_real_text, plot_overfitting,
                      plot_own_text_blend, plot_own_text_data, plot_sampling_diversity)

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


# ---------------------------------------------------------------- attention, the sanity check, speed


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


# ---------------------------------------------------------------- studies (notebooks 03, 05, 06 and 07)

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
